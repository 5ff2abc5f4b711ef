// The control socket speaks newline-delimited JSON: one request object per line, one response
// line per request, in order. Small enough to drive with `socat` when debugging.

export interface ControlRequest {
  cmd: string;
  args?: Record<string, unknown>;
}

export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; error: string };

export const DEFAULT_CONTROL_PATH = '/run/nfsessiond/control.sock';

/** Socket path: --control wins, then NFSESSIOND_CONTROL, then the config's, then the default. */
export function controlPath(flag?: string, fromConfig?: string): string {
  return flag ?? process.env.NFSESSIOND_CONTROL ?? fromConfig ?? DEFAULT_CONTROL_PATH;
}
