import { describe, expect, it } from 'vitest';
import {
  Backoff,
  CommandFailedError,
  CommandStartError,
  CommandTimeoutError,
  errorFields,
  runCommand,
  runCommandChecked,
  sleep,
} from './index.js';

describe('sleep', () => {
  it('resolves early, without throwing, when the signal aborts', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = sleep(60_000, ac.signal);
    ac.abort();
    await p;
    expect(Date.now() - started).toBeLessThan(30_000);
  });
  it('resolves at once for an aborted signal', async () => {
    await sleep(60_000, AbortSignal.abort());
  });
});

describe('Backoff', () => {
  it('grows exponentially up to the cap, with jitter from the random source', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
    expect([1, 2, 3, 4, 5, 6].map(() => b.nextDelayMs())).toEqual([100, 200, 400, 800, 1000, 1000]);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.nextDelayMs()).toBe(100);
    const half = new Backoff({ initialMs: 100, random: () => 0 });
    expect(half.nextDelayMs()).toBe(50);
  });
});

describe('errorFields', () => {
  it('gives type, message, code and cause as plain data', () => {
    const inner = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const outer = new TypeError('etcd unreachable', { cause: inner });
    expect(errorFields(outer)).toEqual({
      type: 'TypeError',
      message: 'etcd unreachable',
      cause: { type: 'Error', message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' },
    });
    expect(errorFields('plain')).toEqual({ type: 'string', message: 'plain' });
  });
});

describe('runCommand', () => {
  it('returns output and exit code without a shell', async () => {
    const r = await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', code: 3 });
    const quoted = await runCommand('echo', ['$(id)', ';', '|']);
    expect(quoted.stdout).toBe('$(id) ; |\n');
  });
  it('passes stdin', async () => {
    expect(await runCommandChecked('cat', [], { input: 'hello' })).toBe('hello');
  });
  it('names the missing program and its package', async () => {
    await expect(runCommand('weft-no-such-binary', [], { packageHint: 'weft-pkg' })).rejects.toThrow(
      new CommandStartError(
        'cannot run `weft-no-such-binary`: weft-no-such-binary not found (install the Debian package weft-pkg)',
      ),
    );
  });
  it('kills a program that overruns its time', async () => {
    await expect(runCommand('sleep', ['10'], { timeoutMs: 50 })).rejects.toBeInstanceOf(CommandTimeoutError);
  });
  it('checked: a non-zero exit is a CommandFailedError with stderr', async () => {
    await expect(runCommandChecked('sh', ['-c', 'echo nope >&2; exit 1'])).rejects.toThrow(
      CommandFailedError,
    );
  });
  it('rejects a namespace name that would need quoting', async () => {
    await expect(runCommand('true', [], { netns: 'a b' })).rejects.toBeInstanceOf(CommandStartError);
  });
});
