#!/usr/bin/env node
// The `buildkite-ecr-injector` command: picks the command, parses its flags and runs it (one module
// per command in cli/). The only place that reads process.argv, and that turns an error into one
// line and an exit code: 64 for a usage error, 1 for anything else (see cli/errors.ts).
import { certsUsage, certs } from './cli/certs.js';
import { doctorUsage, doctor } from './cli/doctor.js';
import { describeFailure } from './cli/errors.js';
import { parseFlags, UsageError } from './cli/flags.js';
import { mutateUsage, mutate } from './cli/mutate.js';
import { refreshUsage, refresh } from './cli/refresh.js';
import { serveUsage, serve } from './cli/serve.js';

const USAGE = `Usage: buildkite-ecr-injector <command> [flags]

Commands:
  serve    run the HTTPS admission webhook
  mutate   decide offline, exactly as the webhook would, for one Pod
  certs    write a CA and a serving certificate, print the caBundle
  refresh  keep the ECR pull Secret fresh in every opted-in namespace (its own Deployment)
  doctor   check, read-only, why a namespace's job Pods would lack their credentials

${serveUsage}
${mutateUsage}
${certsUsage}
${refreshUsage}
${doctorUsage}`;

// A reader that went away (`serve | head`, a broken log pipe) makes writes to stdout/stderr fail with
// EPIPE; that must not become an uncaught exception that stops a healthy webhook or refresher. The
// logger has its own destination for stdout that drops output once the pipe is broken (src/log.ts).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const { values: flags, positionals } = parseFlags(rest);
  if (flags.help) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'serve':
      return serve(flags);
    case 'mutate':
      return mutate(flags, positionals);
    case 'certs':
      return certs(flags);
    case 'refresh':
      return refresh(flags);
    case 'doctor':
      return doctor(flags, positionals);
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const failure = describeFailure(error, process.env);
  process.stderr.write(`${failure.text}\n${failure.stack ? `${failure.stack}\n` : ''}`);
  process.exitCode = failure.exitCode;
});
