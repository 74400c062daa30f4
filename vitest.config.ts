import { defineConfig } from 'vitest/config';

// Three projects: `unit` needs no root and no network; `integration` runs real etcd on loopback;
// `e2e` builds whole clusters in network namespaces (root). Integration and e2e files run one at a time:
// the machine has 2 cores and the tests measure real processes.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'src/**/*.test.ts',
            'daemon/**/*.test.ts',
            'bench/**/*.test.ts',
            'testkit/**/*.test.ts',
            'demo/**/*.test.ts',
          ],
          exclude: ['**/*.int.test.ts', '**/*.e2e.test.ts', 'node_modules/**', 'dist/**', 'dist-dev/**'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: [
            'src/**/*.int.test.ts',
            'e2e/**/*.int.test.ts',
            'daemon/**/*.int.test.ts',
            'testkit/**/*.int.test.ts',
          ],
          exclude: ['node_modules/**', 'dist/**', 'dist-dev/**'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
          globalSetup: ['testkit/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['e2e/**/*.e2e.test.ts'],
          exclude: ['node_modules/**', 'dist/**', 'dist-dev/**'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          globalSetup: ['testkit/global-setup.ts'],
        },
      },
    ],
  },
});
