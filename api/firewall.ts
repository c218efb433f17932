// What the API needs of the firewall: routes and plugins import it from here,
// not from app.ts (which imports them).
import type { Firewall } from '../src/firewall.js';

export type ApiFirewall = Pick<
  Firewall,
  | 'blocks' | 'addBlock' | 'addBlocks' | 'blockMeta' | 'rules' | 'policy' | 'failsafe' | 'flows' | 'flowCount' | 'stats' | 'interfaces' | 'ruleHits'
  | 'uptimeSeconds' | 'restore' | 'tableUsage' | 'events' | 'integrations' | 'lists' | 'feeds' | 'fileManaged' | 'rulesFile' | 'ruleRateStats' | 'rateLimitTop'
>;

