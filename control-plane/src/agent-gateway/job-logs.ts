import { sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { JobLogStream } from '../database/schema.ts';

/** Longest line stored; the agent truncates too, this is the control plane's own bound. */
const MAX_LINE_LENGTH = 4_096;

/**
 * Secrets that must never be stored in a job log, whatever a command prints. Each pattern keeps
 * the name (so the line stays readable) and replaces the value. Add a pattern when a new kind of
 * secret can appear in command output; the agent redacts too, this is the second line of defence.
 */
const REDACTIONS: [RegExp, string][] = [
  // PEM private keys (a whole key on one line, or its first line).
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----.*/g, '[redacted private key]'],
  // wp-config.php: define( 'DB_PASSWORD', '...' ), the keys and the salts.
  [/(define\(\s*['"](?:DB_PASSWORD|[A-Z_]*(?:KEY|SALT))['"]\s*,\s*)(['"])[^'"]*\2/g, '$1$2[redacted]$2'],
  // name=value / name: value for names that hold secrets (password, token, secret, api key, ...).
  [
    /((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth[_-]?key|salt)["']?\s*[=:]\s*)(["']?)[^\s"',;&]+\2/gi,
    '$1$2[redacted]$2',
  ],
  // Command-line flags: --password=x, --password x, --pass x.
  [/(--pass(?:word)?(?:=|\s+))\S+/gi, '$1[redacted]'],
  // Credentials in URLs: scheme://user:password@host.
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@/]+@/gi, '$1[redacted]@'],
  // HTTP authorization headers.
  [/(authorization:\s*(?:bearer|basic)\s+)\S+/gi, '$1[redacted]'],
  // wpcp's own tokens: sessions and join tokens.
  [/wpcp_s_[A-Za-z0-9_-]{43}/g, '[redacted session token]'],
  [/wpcp1\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}/g, '[redacted join token]'],
];

export function redactLine(line: string): string {
  let result = line.length > MAX_LINE_LENGTH ? `${line.slice(0, MAX_LINE_LENGTH)} [truncated]` : line;
  for (const [pattern, replacement] of REDACTIONS) result = result.replace(pattern, replacement);
  // NUL is the one character PostgreSQL text cannot hold.
  return result.replaceAll('\0', '');
}

export interface LogLine {
  commandId: string | null;
  stream: JobLogStream;
  line: string;
}

/**
 * Appends lines to a job's log, keeping at most `maxLines` per job: lines past the limit are
 * dropped, and one marker line says so. One statement per batch.
 */
export async function appendJobLogs(
  db: Db,
  jobId: string,
  lines: LogLine[],
  maxLines: number,
): Promise<void> {
  if (lines.length === 0) return;
  const redacted = lines.map((l) => ({ ...l, line: redactLine(l.line) }));
  const { rows } = await sql<{ inserted: string }>`
    with existing as (select count(*) as n from job_logs where job_id = ${jobId}),
    inserted as (
      insert into job_logs (job_id, command_id, stream, line)
      select ${jobId}, t.command_id, t.stream, t.line
      from unnest(${redacted.map((l) => l.commandId)}::text[], ${redacted.map((l) => l.stream)}::text[],
                  ${redacted.map((l) => l.line)}::text[]) with ordinality as t(command_id, stream, line, n),
           existing
      where t.n <= ${maxLines} - existing.n
      order by t.n
      returning 1
    )
    select count(*) as inserted from inserted`.execute(db);
  const inserted = Number(rows[0]?.inserted ?? 0);
  if (inserted < lines.length) {
    // The marker goes in once: only when the log holds exactly the limit.
    await sql`
      insert into job_logs (job_id, command_id, stream, line)
      select ${jobId}, null, 'agent', ${`[wpcp] log truncated: this job reached its limit of ${maxLines} lines`}
      where (select count(*) from job_logs where job_id = ${jobId}) = ${maxLines}`.execute(db);
  }
}
