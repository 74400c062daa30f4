// notifySystemd against a real AF_UNIX datagram receiver (a python3 one-liner standing in for systemd),
// through the real systemd-notify: the datagram must carry READY=1 and our PID.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProcessHandle, spawnProcess } from '../../testkit/exec.js';
import { makeRunTempDir, removeRunTempDir, runPrefix } from '../../testkit/run.js';
import { InvalidNotifyStateError, notifySystemd } from './sd-notify.js';

function has(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

const HAVE_TOOLS = has('systemd-notify') && has('python3');
if (!HAVE_TOOLS) {
  console.warn(
    'sd-notify tests skipped: systemd-notify or python3 is missing (apt-get install systemd python3)',
  );
}

// Binds a datagram socket (a path, or an abstract name with a leading "@"), prints "bound", then prints each
// datagram received as a JSON string on its own line; exits by itself after 20 s.
const RECEIVER = `
import json, socket, sys
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + name[1:] if name.startswith("@") else name)
s.settimeout(20)
print("bound", flush=True)
try:
    while True:
        print(json.dumps(s.recv(65536).decode()), flush=True)
except socket.timeout:
    pass
`;

async function startReceiver(
  dir: string,
  address: string,
): Promise<{ proc: ProcessHandle; datagrams: () => string[] }> {
  const log = path.join(dir, `receiver-${Math.random().toString(16).slice(2)}.log`);
  const proc = await spawnProcess('python3', ['-c', RECEIVER, address], { logFile: log });
  const read = (): string[] => {
    try {
      return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  for (let i = 0; i < 250 && !read().includes('bound'); i++) await new Promise((r) => setTimeout(r, 20));
  if (!read().includes('bound')) throw new Error(`the receiver did not start: ${read().join(' ')}`);
  return {
    proc,
    datagrams: () =>
      read()
        .filter((l) => l !== 'bound')
        .map((l) => JSON.parse(l) as string),
  };
}

async function waitForDatagram(datagrams: () => string[], text: string): Promise<string> {
  for (let i = 0; i < 250; i++) {
    const found = datagrams().find((d) => d.includes(text));
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no datagram with ${text}; got ${JSON.stringify(datagrams())}`);
}

describe('notifySystemd', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it.skipIf(!HAVE_TOOLS)('sends READY=1 with our PID to a socket path', async () => {
    const dir = makeRunTempDir('notify');
    cleanups.push(() => removeRunTempDir(dir));
    const socketPath = path.join(dir, 'notify.sock');
    const receiver = await startReceiver(dir, socketPath);
    cleanups.push(async () => void (await receiver.proc.kill()));

    const result = await notifySystemd('READY=1\nSTATUS=weft is routing', {
      env: { NOTIFY_SOCKET: socketPath },
    });
    expect(result).toEqual({ sent: true });
    const datagram = await waitForDatagram(receiver.datagrams, 'READY=1');
    expect(datagram.split('\n')).toEqual(
      expect.arrayContaining(['READY=1', 'STATUS=weft is routing', `MAINPID=${process.pid}`]),
    );
  });

  it.skipIf(!HAVE_TOOLS)('sends to an abstract socket ("@name")', async () => {
    const dir = makeRunTempDir('notify');
    cleanups.push(() => removeRunTempDir(dir));
    const address = `@${runPrefix()}-notify-${process.pid}`;
    const receiver = await startReceiver(dir, address);
    cleanups.push(async () => void (await receiver.proc.kill()));

    expect(await notifySystemd('STOPPING=1', { env: { NOTIFY_SOCKET: address } })).toEqual({ sent: true });
    await waitForDatagram(receiver.datagrams, 'STOPPING=1');
  });

  it('does nothing without NOTIFY_SOCKET', async () => {
    const result = await notifySystemd('READY=1', { env: {}, command: '/nonexistent/systemd-notify' });
    expect(result.sent).toBe(false);
    expect(result.sent === false && result.reason).toMatch(/NOTIFY_SOCKET is not set/);
  });

  it('reports a missing helper or an unreachable socket instead of throwing', async () => {
    const missing = await notifySystemd('READY=1', {
      env: { NOTIFY_SOCKET: '/nonexistent/notify.sock' },
      command: '/nonexistent/systemd-notify',
    });
    expect(missing.sent === false && missing.reason).toMatch(/not found/);
    if (HAVE_TOOLS) {
      const unreachable = await notifySystemd('READY=1', {
        env: { NOTIFY_SOCKET: '/nonexistent/notify.sock' },
      });
      expect(unreachable.sent).toBe(false);
    }
  });

  it('accepts a logger as second argument and logs the outcome', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const saved = process.env.NOTIFY_SOCKET;
    delete process.env.NOTIFY_SOCKET;
    try {
      expect((await notifySystemd('READY=1', logger)).sent).toBe(false);
    } finally {
      if (saved !== undefined) process.env.NOTIFY_SOCKET = saved;
    }
    expect(lines.join('')).toContain('systemd notification skipped');
  });

  it('rejects a state that is not VARIABLE=value lines', () => {
    expect(() => notifySystemd('ready', { env: {} })).toThrow(InvalidNotifyStateError);
    expect(() => notifySystemd('', { env: {} })).toThrow(/empty/);
  });
});
