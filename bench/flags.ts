// Command-line flags shared by the benches: `--name=N` positive integers.
export function intFlag(args: string[], bench: string, name: string, def: number): number {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  if (!a) return def;
  const v = Number(a.slice(name.length + 3));
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench ${bench}: --${name} must be a positive integer`);
  return v;
}
