// Tests build tiny random checkpoints with the library's own generator.
export * from '../../ts/io/random-checkpoint.ts';
