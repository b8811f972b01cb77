// ESLint flat config: the recommended JS rules plus typescript-eslint's type-aware recommended set.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist-bench/', 'coverage/', '.tap/', 'node_modules/', 'certs/', '.bench-build/', '.soak-build/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // src/webhook/ is the pure core (see its README.md): everything may import it, it imports nothing
    // else of ours, does no I/O and reads no clock, so every decision is a function of its inputs.
    files: ['src/webhook/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...['fastify', '@kubernetes/client-node', 'pino', 'prom-client', 'close-with-grace', 'cockatiel', 'selfsigned'].map((name) => ({
              name,
              message: 'src/webhook/ is the pure core: no HTTP server, Kubernetes client, logger, metrics or timers.',
            })),
          ],
          patterns: [
            { regex: '^\\.\\./', message: 'src/webhook/ imports nothing from outside itself; the edges import it.' },
            {
              regex: '^(node:)?(fs|fs/promises|net|http|https|http2|tls|dgram|dns|dns/promises|child_process|cluster|worker_threads|readline|os|process|timers|timers/promises|inspector|v8|vm)$',
              message: 'src/webhook/ does no I/O: take what you need as an argument.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'src/webhook/ reads no environment and no clock: take it as an argument.' },
        { name: 'setTimeout', message: 'src/webhook/ has no timers.' },
        { name: 'setInterval', message: 'src/webhook/ has no timers.' },
        { name: 'fetch', message: 'src/webhook/ does no I/O.' },
        { name: 'console', message: 'src/webhook/ does not log; return what happened and let the edge log it.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'src/webhook/ reads no clock: take the time as an argument.' },
        { selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']", message: 'src/webhook/ reads no clock: take the time as an argument.' },
        { selector: "CallExpression[callee.object.name='performance'][callee.property.name='now']", message: 'src/webhook/ reads no clock.' },
      ],
    },
  },
  {
    // tap collects `t.test(...)` promises itself; awaiting each one would serialise nothing useful.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off' },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
