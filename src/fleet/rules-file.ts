// One declarative source for a fleet: `serve --rules FILE` (YAML) with the
// top-level keys policy (as PUT /v1/policy), blocks (CIDR strings or block
// objects), rules (rule objects) and lists (name -> {entries: [...] | file:
// PATH, action, direction, comment}). The daemon reconciles its store and the
// kernel to the file at start and on every change: fs.watch on the file's
// directory (a Kubernetes ConfigMap mount swaps a symlink there) and a poll
// as the fallback. The whole file is parsed and validated before anything is
// applied, so a broken file changes nothing: the last good state stays and
// the failure shows in /healthz and the log until the file is fixed.
// Everything applied carries origin "file" (src/fleet/managed.ts).
import { createHash } from 'node:crypto';
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { XdpwallError } from '../errors.js';
import { parseCidr } from '../rules/cidr.js';
import { isBlockDirection, type BlockDirection } from '../rules/model.js';
import { listRef, parseRule, type RuleInput } from '../policy/model.js';
import { listsOf } from '../policy/rules.js';
import type { PolicyDefaults } from '../policy/engine.js';
import { checkListName, isListAction, type ListAction } from '../lists/model.js';
import { parseEntryArray, parseListText, type ParsedEntries } from '../lists/parse.js';
import { sameKeys } from '../lists/keys.js';
import type { Firewall } from '../firewall.js';
import { blockKey } from './managed.js';

const MANAGED_SETTING = 'rulesFile.managed';

export interface RulesFileContent {
  policy?: Partial<PolicyDefaults>;
  blocks: Array<{ cidr: string; direction: BlockDirection; comment: string | null }>;
  rules: RuleInput[];
  lists: Map<string, { entries: ParsedEntries; action: ListAction; direction: BlockDirection; comment: string | null }>;
}

export class RulesFileError extends Error {}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses and validates the whole file; throws RulesFileError naming the key. */
export function parseRulesFile(path: string, text: string): RulesFileContent {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new RulesFileError(`not valid YAML: ${(error as Error).message}`);
  }
  doc ??= {};
  if (!isRecord(doc)) throw new RulesFileError('the file must be a mapping with policy, blocks, rules and lists');
  const { policy, blocks, rules, lists, ...rest } = doc;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new RulesFileError(`unknown top-level key ${unknown[0]} (policy, blocks, rules, lists)`);
  const at = (where: string, check: () => void) => {
    try {
      check();
    } catch (error) {
      if (error instanceof RulesFileError) throw error;
      throw new RulesFileError(`${where}: ${error instanceof XdpwallError ? `${error.code}: ${error.message}` : (error as Error).message}`);
    }
  };
  const content: RulesFileContent = { blocks: [], rules: [], lists: new Map() };
  if (policy !== undefined && policy !== null) {
    if (!isRecord(policy)) throw new RulesFileError('policy must be a mapping like {ingress: drop}');
    for (const [hook, action] of Object.entries(policy)) {
      if ((hook !== 'ingress' && hook !== 'egress') || (action !== 'accept' && action !== 'drop')) {
        throw new RulesFileError(`policy.${hook}: only ingress and egress, each accept or drop`);
      }
    }
    content.policy = policy as Partial<PolicyDefaults>;
  }
  for (const [i, block] of asArray(blocks, 'blocks').entries()) {
    const item = typeof block === 'string' ? { cidr: block } : block;
    at(`blocks[${i}]`, () => {
      if (!isRecord(item) || typeof item.cidr !== 'string') throw new Error('a CIDR string or {cidr, direction?, comment?}');
      const extra = Object.keys(item).filter((k) => !['cidr', 'direction', 'comment'].includes(k));
      if (extra.length > 0) throw new Error(`unknown key ${extra[0]}`);
      if (item.direction !== undefined && !isBlockDirection(item.direction)) throw new Error('direction must be src or dst');
      const cidr = parseCidr(item.cidr);
      if (cidr.prefixLen === 0) throw new Error('a /0 block drops everything: use policy instead');
      content.blocks.push({ cidr: cidr.text, direction: (item.direction as BlockDirection | undefined) ?? 'src', comment: typeof item.comment === 'string' ? item.comment : null });
    });
  }
  for (const [i, rule] of asArray(rules, 'rules').entries()) {
    at(`rules[${i}]`, () => {
      if (!isRecord(rule)) throw new Error('a rule object as in POST /v1/rules');
      parseRule(rule as unknown as RuleInput, new Date());
      content.rules.push(rule as unknown as RuleInput);
    });
  }
  if (lists !== undefined && lists !== null) {
    if (!isRecord(lists)) throw new RulesFileError('lists must be a mapping of name -> {entries | file, action, direction}');
    for (const [name, spec] of Object.entries(lists)) {
      at(`lists.${name}`, () => {
        checkListName(name);
        if (!isRecord(spec)) throw new Error('{entries: [...] or file: PATH, action?, direction?, comment?}');
        const extra = Object.keys(spec).filter((k) => !['entries', 'file', 'action', 'direction', 'comment'].includes(k));
        if (extra.length > 0) throw new Error(`unknown key ${extra[0]}`);
        if ((spec.entries === undefined) === (spec.file === undefined)) throw new Error('exactly one of entries and file');
        if (spec.action !== undefined && !isListAction(spec.action)) throw new Error('action must be deny, allow or none');
        if (spec.direction !== undefined && !isBlockDirection(spec.direction)) throw new Error('direction must be src or dst');
        let entries: ParsedEntries;
        if (spec.file !== undefined) {
          const file = resolve(dirname(path), String(spec.file));
          entries = parseListText(readFileSync(file, 'utf8'));
        } else {
          if (!Array.isArray(spec.entries) || !spec.entries.every((e) => typeof e === 'string')) throw new Error('entries must be a list of CIDRs');
          entries = parseEntryArray(spec.entries as string[]);
        }
        content.lists.set(name, {
          entries,
          action: (spec.action as ListAction | undefined) ?? 'deny',
          direction: (spec.direction as BlockDirection | undefined) ?? 'src',
          comment: typeof spec.comment === 'string' ? spec.comment : null,
        });
      });
    }
  }
  return content;
}

function asArray(value: unknown, key: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RulesFileError(`${key} must be a list`);
  return value;
}

/** Canonical JSON of a rule input (keys sorted): how an unchanged rule is recognised. */
const ruleKey = (rule: RuleInput): string => JSON.stringify(rule, Object.keys(rule).sort());

interface ManagedState {
  blocks: string[];
  rules: Record<string, number>;
  policy: boolean;
}

export interface RulesFileStatus {
  path: string;
  ok: boolean;
  reason?: string;
  /** Digest of the file's text applied last. */
  applied?: string;
  appliedAt?: string;
}

export interface RulesFileLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error?(details: object, message: string): void;
}

export class RulesFile {
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private lastText: string | undefined;
  private readonly state: RulesFileStatus;
  private managedRules = new Map<string, number>();

  constructor(
    readonly path: string,
    private readonly firewall: Firewall,
    private readonly log: RulesFileLog,
    private readonly options: { pollMs?: number; now?: () => Date } = {},
  ) {
    this.state = { path, ok: true };
    const saved = firewall.storeSetting<ManagedState>(MANAGED_SETTING);
    const managed = firewall.fileManaged;
    managed.path = path;
    if (saved) {
      managed.blocks = new Set(saved.blocks);
      this.managedRules = new Map(Object.entries(saved.rules));
      managed.rules = new Set(this.managedRules.values());
      managed.policy = saved.policy;
    }
  }

  status(): RulesFileStatus {
    return { ...this.state };
  }

  /** Applies the file now, then follows it. */
  async start(): Promise<void> {
    await this.check();
    try {
      this.watcher = watch(dirname(this.path), () => this.soon());
      this.watcher.on('error', () => undefined); // the poll carries on
    } catch {
      // No inotify here (or the directory is gone): the poll alone follows the file.
    }
    this.poller = setInterval(() => this.soon(), this.options.pollMs ?? 1000);
    this.poller.unref();
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.poller);
    clearTimeout(this.debounce);
  }

  /** Reads the file and applies it if its text changed; resolves when done. */
  check(): Promise<void> {
    this.running = this.running.then(() => this.apply()).catch(() => undefined);
    return this.running;
  }

  private soon(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), 50);
    this.debounce.unref();
  }

  private async apply(): Promise<void> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      this.fail(`cannot read it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return;
    }
    if (text === this.lastText && this.state.ok) return;
    let content: RulesFileContent;
    try {
      content = parseRulesFile(this.path, text);
      this.checkListReferences(content);
    } catch (error) {
      this.lastText = text;
      this.fail((error as Error).message);
      return;
    }
    try {
      await this.reconcile(content);
    } catch (error) {
      this.lastText = text;
      this.fail(`applying it failed: ${error instanceof XdpwallError ? `${error.code}: ${error.message}` : (error as Error).message}`);
      return;
    }
    this.lastText = text;
    const digest = createHash('sha256').update(text).digest('hex').slice(0, 12);
    if (!this.state.ok) this.log.info({ rulesFile: this.path }, 'rules file healthy again');
    this.state.ok = true;
    delete this.state.reason;
    this.state.applied = digest;
    this.state.appliedAt = (this.options.now ?? (() => new Date()))().toISOString();
    this.log.info({ rulesFile: this.path, digest }, 'rules file applied');
  }

  private fail(reason: string): void {
    const full = `rules file ${this.path}: ${reason}; the last good state stays in force`;
    if (this.state.reason !== full) (this.log.error ?? this.log.warn).call(this.log, { rulesFile: this.path, reason }, 'rules file not applied');
    this.state.ok = false;
    this.state.reason = full;
  }

  /**
   * Before anything is applied: every "list:NAME" a rule of the file names is
   * a list of the file or one made through the API (not a file list the file
   * drops), and no list the file drops is still used by a rule that stays.
   * Otherwise the reconcile would stop half way (INVALID_RULE, LIST_IN_USE).
   */
  private checkListReferences(content: RulesFileContent): void {
    const { firewall } = this;
    const survives = (name: string) => content.lists.has(name) || (firewall.lists.has(name) && firewall.lists.get(name).origin !== 'file');
    content.rules.forEach((rule, i) => {
      for (const { field, name } of listsOf(parseRule(rule, new Date()))) {
        if (!survives(name)) throw new RulesFileError(`rules[${i}]: ${field}: ${listRef(name)}: no list named ${name} in the file's lists or made through the API`);
      }
    });
    const wanted = new Set(content.rules.map(ruleKey));
    const leaving = new Set([...this.managedRules].filter(([key]) => !wanted.has(key)).map(([, id]) => id));
    for (const list of firewall.lists.all()) {
      if (list.origin !== 'file' || content.lists.has(list.name)) continue;
      const users = firewall.rules.listUsers.usedBy(list.name).filter((id) => !leaving.has(id));
      if (users.length > 0) throw new RulesFileError(`lists.${list.name}: removed from the file while rule${users.length === 1 ? '' : 's'} ${users.join(', ')} still use${users.length === 1 ? 's' : ''} it (LIST_IN_USE)`);
    }
  }

  /** Makes the store and the kernel match the file: lists, blocks, rules, policy, then removals. */
  private async reconcile(content: RulesFileContent): Promise<void> {
    const { firewall } = this;
    const managed = firewall.fileManaged;
    for (const [name, list] of content.lists) {
      const current = firewall.lists.has(name) ? firewall.lists.get(name) : undefined;
      const same = current && current.origin === 'file' && current.action === list.action && current.direction === list.direction &&
        current.comment === list.comment && sameKeys(current.keys, list.entries.keys);
      if (!same) await firewall.lists.put(name, list, { origin: 'file' });
    }

    const wantedBlocks = new Map(content.blocks.map((b) => [blockKey(b.cidr, b.direction), b]));
    for (const [key, block] of wantedBlocks) {
      if (managed.blocks.has(key)) continue; // the API cannot remove it (MANAGED_BY_FILE)
      await firewall.addBlock({ cidr: block.cidr, direction: block.direction, comment: block.comment });
      managed.blocks.add(key);
    }
    const wantedRules = new Map(content.rules.map((r) => [ruleKey(r), r]));
    for (const [key, rule] of wantedRules) {
      if (this.managedRules.has(key)) continue;
      const added = await firewall.rules.add(rule);
      this.managedRules.set(key, added.id);
      managed.rules.add(added.id);
      this.save();
    }
    for (const [key, id] of [...this.managedRules]) {
      if (wantedRules.has(key)) continue;
      managed.rules.delete(id);
      this.managedRules.delete(key);
      await firewall.rules.remove(id).catch((error: unknown) => {
        if (!(error instanceof XdpwallError && error.code === 'NOT_FOUND')) throw error;
      });
      this.save();
    }
    for (const key of [...managed.blocks]) {
      if (wantedBlocks.has(key)) continue;
      const [direction, cidr] = key.split('|') as [BlockDirection, string];
      managed.blocks.delete(key);
      await firewall.blocks.removeByCidr(cidr, direction).catch((error: unknown) => {
        if (!(error instanceof XdpwallError && error.code === 'NOT_FOUND')) throw error;
      });
    }
    if (content.policy) {
      const wanted = { ...firewall.policy.defaultPolicy, ...content.policy };
      if (wanted.ingress !== firewall.policy.defaultPolicy.ingress || wanted.egress !== firewall.policy.defaultPolicy.egress) {
        await firewall.rules.setDefaults(wanted);
      }
    }
    managed.policy = content.policy !== undefined;
    for (const list of firewall.lists.all()) {
      if (list.origin === 'file' && !content.lists.has(list.name)) await firewall.lists.delete(list.name, { origin: 'file' });
    }
    this.save();
  }

  private save(): void {
    const managed = this.firewall.fileManaged;
    this.firewall.setStoreSetting(MANAGED_SETTING, {
      blocks: [...managed.blocks],
      rules: Object.fromEntries(this.managedRules),
      policy: managed.policy,
    } satisfies ManagedState);
  }
}

