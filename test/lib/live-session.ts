// The engine keeps sessions in compact storage and hands out copies; a test that follows one
// session through several packets reads it through this, which looks the session up again on
// every access (after it ended: as it was last seen).

import type { Session } from '../../src/engine/types.js';

export function live(e: { bySerialNumber(serial: number): Session | undefined }, s: Session): Session {
  const serial = s.serial;
  let last = s;
  const cur = (): Session => (last = e.bySerialNumber(serial) ?? last);
  return new Proxy({} as Session, {
    get: (_, k) => (cur() as unknown as Record<string | symbol, unknown>)[k],
    has: (_, k) => k in cur(),
    ownKeys: () => Reflect.ownKeys(cur()),
    getOwnPropertyDescriptor: (_, k) => {
      const d = Reflect.getOwnPropertyDescriptor(cur(), k);
      return d ? { ...d, configurable: true } : undefined;
    },
  });
}
