/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Tests compile with their own tsconfig: jest's globals are typed there and nowhere in lib/.
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }] },
  // Native runs and spawned servers take real time; each test states its own bound where longer.
  testTimeout: 30000,
  // The native suites share one machine's two cores; running them serially keeps timings sane.
  maxWorkers: 1,
  reporters: ['default', '<rootDir>/test/plain-summary-reporter.js'],
};
