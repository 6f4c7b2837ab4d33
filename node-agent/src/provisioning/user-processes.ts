// Processes running as an environment's user (PHP-FPM workers winding down after a reload, a
// WP-Cron run, a WP-CLI command): read from /proc. Taking an environment down ends them before
// its account is deleted (userdel refuses a user with processes).
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Pids whose real or effective uid is `uid` (zombies excluded). */
export async function processesOfUser(uid: number, procDir = '/proc'): Promise<number[]> {
  if (!Number.isInteger(uid) || uid <= 0) throw new Error(`refusing to look for processes of uid ${uid}`);
  const found: number[] = [];
  for (const entry of await readdir(procDir)) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let status: string;
    try {
      status = await readFile(`${procDir}/${entry}/status`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    if (state === 'Z' || state === 'X') continue;
    const uids = /^Uid:\s+([0-9]+)\s+([0-9]+)/m.exec(status);
    if (uids && (Number(uids[1]) === uid || Number(uids[2]) === uid)) found.push(Number(entry));
  }
  return found;
}

/**
 * Ends every process of `uid`: SIGTERM, then SIGKILL to what is left after `graceMs`. Resolves with
 * the number of processes that were found. Never for uid 0.
 */
export async function endProcessesOfUser(uid: number, graceMs = 2_000): Promise<number> {
  const initial = await processesOfUser(uid);
  if (initial.length === 0) return 0;
  const signal = (pids: number[], name: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, name);
      } catch {
        // already gone
      }
    }
  };
  signal(initial, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let left = initial;
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = await processesOfUser(uid);
  }
  for (let round = 0; left.length > 0 && round < 20; round++) {
    signal(left, 'SIGKILL');
    await sleep(50);
    left = await processesOfUser(uid);
  }
  return initial.length;
}
