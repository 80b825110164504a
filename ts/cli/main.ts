// `bayeslora` command line: dispatches subcommands. Each subcommand lives in
// its own file under ts/cli/ and exports `run(args): Promise<number>`.
import { BayesLoraError } from '../errors.ts';

type Command = { describe: string; load: () => Promise<{ run: (args: string[]) => Promise<number> }> };

const commands: Record<string, Command> = {
  info: { describe: 'print backend, BLAS, threads, SIMD and CUDA status', load: () => import('./info.ts') },
  run: { describe: 'the main job: fine-tune LoRA, fit Laplace, compare calibration (npm start)', load: () => import('./run.ts') },
  pretrain: { describe: 'pre-train a small LLaMA model on a text corpus (the built-in model)', load: () => import('./pretrain.ts') },
  data: { describe: 'build the built-in tasks, or convert public QA datasets to JSONL', load: () => import('./data.ts') },
  fit: { describe: 'fit a Laplace posterior over a PEFT LoRA adapter (K-FAC, marglik prior)', load: () => import('./fit.ts') },
  predict: { describe: 'Laplace-LoRA predictive (probs, logit mean and covariance) on a JSONL file', load: () => import('./predict.ts') },
};

function usage(): string {
  const lines = Object.entries(commands).map(([k, c]) => `  ${k.padEnd(10)} ${c.describe}`);
  return `usage: bayeslora <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 1;
  }
  const c = commands[cmd];
  if (!c) {
    process.stderr.write(`bayeslora: unknown command '${cmd}'\n${usage()}`);
    return 2;
  }
  try {
    const mod = await c.load();
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof BayesLoraError) {
      process.stderr.write(`bayeslora ${cmd}: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
