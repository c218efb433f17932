// Runs every cleanup step even when an earlier one fails, then reports all failures.
export async function teardown(...steps: Array<(() => Promise<unknown> | unknown) | undefined>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step?.();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, 'several cleanup steps failed');
}
