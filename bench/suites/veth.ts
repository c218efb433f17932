import type { SuiteContext } from '../lib/context.js';
export async function runVeth(ctx: SuiteContext): Promise<void> { ctx.log('todo'); }
