// The messages a config text is rejected with, in file order (empty when it is accepted).

import { ConfigErrors, parseConfig } from '../../src/config/load.js';

export function configErrors(text: string, file: string): string[] {
  try {
    parseConfig(text, file);
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}
