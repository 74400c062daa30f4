import { describe, expect, it } from 'vitest';
import { TaskSupervisor } from '../core/index.js';
import { silentLogger } from '../log/index.js';
import type { HealthVerdict } from './health.js';
import { readinessNotifierTask } from './sd-notify.js';

describe('readinessNotifierTask', () => {
  it('sends READY=1 once when ready, then a STATUS line on each change of /readyz', async () => {
    let verdict: HealthVerdict = { ok: false, reasons: ['subnet file not written'] };
    const sent: string[] = [];
    const sup = new TaskSupervisor();
    sup.start(
      readinessNotifierTask({ readyz: () => verdict }, silentLogger(), async (state) => {
        sent.push(state);
        return { sent: true };
      }),
    );
    const waitFor = async (n: number) => {
      for (let i = 0; i < 100 && sent.length < n; i++) await new Promise((r) => setTimeout(r, 50));
      expect(sent).toHaveLength(n);
    };
    await waitFor(1);
    verdict = { ok: true, reasons: [] };
    await waitFor(2);
    verdict = { ok: false, reasons: ['no subnet lease held', 'firewall rules not installed'] };
    await waitFor(3);
    verdict = { ok: true, reasons: [] };
    await waitFor(4);
    await sup.stop();
    expect(sent).toEqual([
      'STATUS=not ready: subnet file not written',
      'READY=1\nSTATUS=ready',
      'STATUS=not ready: no subnet lease held; firewall rules not installed',
      'STATUS=ready',
    ]);
  });
});
