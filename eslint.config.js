// Lint of everything written here (lib, bench, scripts, test and these config files): eslint's
// and typescript-eslint's recommended rules. A rule is turned off only where it fights code that
// is deliberate, with the reason beside it.
const js = require('@eslint/js');
const globals = require('globals');
const tseslint = require('typescript-eslint');

module.exports = tseslint.config(
  { ignores: ['dist/', 'build/', 'prebuilds/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A `let` assigned once, after closures that read it are made, cannot be a `const`.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Plain CommonJS run by node as it is: scripts/*.js, the jest reporter, config files.
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The web page's script: an ES module run by the browser, not by node.
    files: ['web/**/*.js'],
    languageOptions: { sourceType: 'module', globals: globals.browser },
  },
  {
    // A .node file can only be loaded with a computed require().
    files: ['lib/native/load.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Takes the same parameter type as Error.captureStackTrace, which it hands it to.
    files: ['lib/runtime/call-site.ts'],
    rules: { '@typescript-eslint/no-unsafe-function-type': 'off' },
  },
  {
    // Test helpers hand back JSON replies as `any`, so each test reads the fields it checks.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
