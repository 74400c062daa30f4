import { describe, expect, it } from 'vitest';
import { matchBatchOutput } from './dump.js';
import { KernelCommandError } from './exec.js';
import { KernelOutputParseError, parseNeighborList, parseRouteList } from './parse.js';

const COMMAND = 'bridge -json -force -batch -';

describe('matchBatchOutput (one `-json -force -batch` process for several reads)', () => {
  it('gives each line its output and each failed line its error', () => {
    const result = {
      code: 1,
      stdout: '[{"mac":"02:00:00:00:00:02","dst":"192.168.77.2"}]\n[]\n',
      stderr: 'Cannot find device "flannel-v6.1"\nCommand failed -:2\n',
    };
    expect(matchBatchOutput(3, result, COMMAND)).toEqual([
      { ok: true, text: '[{"mac":"02:00:00:00:00:02","dst":"192.168.77.2"}]' },
      { ok: false, error: 'Cannot find device "flannel-v6.1"' },
      { ok: true, text: '[]' },
    ]);
  });

  it('rejects a batch that failed without naming a line', () => {
    const result = { code: 1, stdout: '', stderr: 'Cannot open network namespace "wt00n1": No such file\n' };
    expect(() => matchBatchOutput(2, result, COMMAND)).toThrow(KernelCommandError);
  });

  it('rejects output that does not match the commands one to one', () => {
    const result = { code: 0, stdout: '[]\n', stderr: '' };
    expect(() => matchBatchOutput(2, result, COMMAND)).toThrow(KernelOutputParseError);
  });
});

describe('parseNeighborList for `neigh show dev <dev>`', () => {
  it('takes the device from the command when iproute2 leaves it out of each entry', () => {
    const text = '[{"dst":"10.2.0.0","lladdr":"02:00:00:00:00:02","state":["PERMANENT"]}]';
    expect(parseNeighborList(text, 'ip -json neigh show dev flannel.1 nud permanent', 'flannel.1')).toEqual([
      { dev: 'flannel.1', ip: '10.2.0.0', mac: '02:00:00:00:00:02' },
    ]);
    expect(parseNeighborList(text)).toEqual([]);
  });
});

describe('parseRouteList with -d (as the dump batch reads routes)', () => {
  it('reads the same routes as without -d: `boot` is the default protocol, `kernel` is kept', () => {
    const text = JSON.stringify([
      {
        type: 'unicast',
        dst: '10.5.2.0/24',
        gateway: '10.5.2.0',
        dev: 'flannel.1',
        protocol: 'boot',
        scope: 'global',
        flags: ['onlink'],
      },
      {
        type: 'unicast',
        dst: '10.5.1.0/24',
        dev: 'cni0',
        protocol: 'kernel',
        scope: 'link',
        prefsrc: '10.5.1.1',
        flags: [],
      },
    ]);
    expect(parseRouteList(text)).toEqual([
      { dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', onlink: true },
      { dst: '10.5.1.0/24', dev: 'cni0', protocol: 'kernel' },
    ]);
  });
});
