/** @type {import('jest').Config} */
const config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }] },
  moduleNameMapper: { '^@common/(.*)$': '<rootDir>/lambdas/common/$1' },
  testTimeout: 120000,
  // CDK apps made without an outdir write into the test file's own directory, removed after it.
  setupFilesAfterEnv: ['<rootDir>/test/support/cdk-outdir.ts'],
};
// .ci/run asks for a machine-readable summary.
if (process.env.JEST_JSON_OUTPUT) {
  config.reporters = ['default', ['<rootDir>/test/support/json-summary-reporter.js', { outputFile: process.env.JEST_JSON_OUTPUT }]];
}
module.exports = config;
