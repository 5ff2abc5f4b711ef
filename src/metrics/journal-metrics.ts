// The table journal's metrics (state/table-store.ts), read from its counters when scraped:
//   nfsessiond_journal_records_total, _bytes_total, _flushes_total   counters: what reached the disk
//   nfsessiond_journal_compactions_total                              counter: snapshots written
//   nfsessiond_journal_write_errors_total                             counter: failed writes
//   nfsessiond_journal_failing                                        gauge 0/1: writes fail now
//   nfsessiond_journal_last_flush_seconds                             gauge: the last write + fsync
//   nfsessiond_journal_replayed_records, _dropped_records             gauges: the start-up replay

import { Counter, Gauge, type Registry } from 'prom-client';

/** The TableStore's stats() keys; undefined while snapshots are off. */
export type JournalSource = () => Record<string, number> | undefined;

const COUNTERS: Array<[string, string, string]> = [
  ['records', 'nfsessiond_journal_records_total', 'Table journal records written (session start/end, expectation add/end, serial).'],
  ['bytes', 'nfsessiond_journal_bytes_total', 'Bytes written to the table journal.'],
  ['flushes', 'nfsessiond_journal_flushes_total', 'Table journal flushes (one write and one fsync each).'],
  ['compactions', 'nfsessiond_journal_compactions_total', 'Table snapshots written, each emptying the journal.'],
  ['write_errors', 'nfsessiond_journal_write_errors_total', 'Failed journal or snapshot writes (a full disk, EIO).'],
];

const GAUGES: Array<[string, string, string, number]> = [
  ['failing', 'nfsessiond_journal_failing', 'Journal writes fail now (1): a crash loses the changes since the last good write.', 1],
  ['last_flush_us', 'nfsessiond_journal_last_flush_seconds', 'Duration of the last journal write + fsync.', 1e-6],
  ['replayed', 'nfsessiond_journal_replayed_records', 'Journal records applied at start-up.', 1],
  ['dropped', 'nfsessiond_journal_dropped_records', 'Journal records dropped at start-up (a torn or corrupt record and those after it).', 1],
];

export function registerJournalMetrics(registers: Registry[], journal: JournalSource): void {
  for (const [key, name, help] of COUNTERS) {
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(journal()?.[key] ?? 0); } });
  }
  for (const [key, name, help, scale] of GAUGES) {
    new Gauge({ name, help, registers, collect() { this.set((journal()?.[key] ?? 0) * scale); } });
  }
}
