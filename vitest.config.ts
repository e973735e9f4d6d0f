import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // native addons: every test file in its own forked process
    pool: 'forks',
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
