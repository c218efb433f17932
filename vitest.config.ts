import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'netns',
          include: ['netns-tests/**/*.test.ts'],
          // The suites run dist/, the BPF object and the addon: refuse a build older than its sources.
          globalSetup: ['netns-tests/lib/fresh-build.ts'],
          // Suites share the kernel and spawn daemons: run them one at a time.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
