// diagnose debug capture start|stop|status: the decided packets with their verdicts to pcapng
// (src/capture/decision-capture.ts).

import type { DecisionCapture } from '../../capture/decision-capture.js';
import type { Handler } from '../server.js';

export function captureHandlers(cap: DecisionCapture, now: () => number = Date.now): Record<string, Handler> {
  return {
    'debug.capture.start': (args) => cap.start(String(args.file ?? ''), args.count === undefined ? 0 : Number(args.count), now(), args.overwrite === true),
    'debug.capture.stop': () => cap.stop(now()),
    'debug.capture.status': () => cap.status(),
  };
}
