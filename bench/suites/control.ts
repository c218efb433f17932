import type { SuiteContext } from '../lib/context.js';
export async function runControl(ctx: SuiteContext): Promise<void> { ctx.log('todo'); }
