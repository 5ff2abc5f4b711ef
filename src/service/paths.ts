// Where the service keeps things. The state directory (table snapshot) comes, in order, from
// `run --state-dir`, `set state-dir` in `config system nfsessiond`, $STATE_DIRECTORY (systemd
// sets it from StateDirectory=; it may list several, colon-separated: the first is ours), and
// the default /var/lib/nfsessiond.

export const DEFAULT_STATE_DIR = '/var/lib/nfsessiond';

export type StateDirSource = 'option' | 'config' | 'environment' | 'default';

export function resolveStateDir(flag: string | undefined, fromConfig: string | undefined, env: NodeJS.ProcessEnv = process.env): { dir: string; source: StateDirSource } {
  if (flag) return { dir: flag, source: 'option' };
  if (fromConfig) return { dir: fromConfig, source: 'config' };
  const sd = env.STATE_DIRECTORY?.split(':').find((p) => p.length > 0);
  if (sd) return { dir: sd, source: 'environment' };
  return { dir: DEFAULT_STATE_DIR, source: 'default' };
}
