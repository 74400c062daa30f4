// weftctl's command line without a service behind it: usage errors, help and version (the commands' runs against
// a real etcd and weftd are in leases-config.int.test.ts and status.int.test.ts).
import { describe, expect, it } from 'vitest';
import { configCommands } from './config.js';
import { runWeftctl } from './dispatch.js';
import { type CommandIo, EXIT_OK, EXIT_USAGE } from './io.js';
import { leasesCommand } from './leases.js';
import { statusCommand } from './status.js';

async function weftctl(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const io: CommandIo = {
    stdout: (t) => {
      out.stdout += t;
    },
    stderr: (t) => {
      out.stderr += t;
    },
    env: {},
  };
  const commands = [leasesCommand(io), ...configCommands(io), statusCommand(io)];
  const code = await runWeftctl(argv, io, commands, { config: 'read or write the network config in etcd' });
  return { code, ...out };
}

describe('weftctl command line', () => {
  it.each([
    [[], 'weftctl: name a command (leases, config, status)\n'],
    [['config'], 'weftctl: config: name a command (get, set)\n'],
    [['nonsense'], 'weftctl: Unknown argument: nonsense\n'],
    [
      ['config', 'set'],
      'weftctl: Not enough non-option arguments: weftctl config set <file> (missing file)\n',
    ],
    [['config', 'set', 'a.json', 'b.json'], 'weftctl: Unknown argument: b.json\n'],
    [['leases', '-o', 'xml'], 'weftctl: --output: "xml" is not one of "table", "json"\n'],
    [['leases', '--bogus'], 'weftctl: Unknown argument: bogus\n'],
    [['status', '--limit=ten'], 'weftctl: --limit: "ten" is not a number\n'],
    [
      ['config', 'get', '--effective=maybe'],
      'weftctl: --effective: "maybe" is not a boolean (true or false)\n',
    ],
  ])('refuses %j with exit 2 and one line', async (argv, stderr) => {
    const r = await weftctl(argv);
    expect(r).toEqual({ code: EXIT_USAGE, stdout: '', stderr });
  });

  it('prints the commands, a group’s commands and a command’s flags on --help', async () => {
    const root = await weftctl(['--help']);
    expect(root.code).toBe(EXIT_OK);
    expect(root.stdout).toMatch(
      /^weftctl <command> \[flags\]\n\nCommands:\n {2}weftctl leases +list the subnet leases/,
    );
    expect(root.stdout).toMatch(/\n {2}weftctl config +read or write the network config in etcd\n/);
    const group = await weftctl(['config', '-h']);
    expect(group.stdout).toContain('weftctl config set <file>  validate a network config file');
    const set = await weftctl(['config', 'set', '--help']);
    expect(set.stdout).toMatch(/Positionals:\n {2}file +net-conf JSON file +\[string\] \[required\]/);
    expect(set.stdout).toContain('--etcd-endpoints');
    expect(set.stdout).toContain('[env FLANNELD_ETCD_ENDPOINTS]');
    const status = await weftctl(['status', '--help']);
    expect(status.stdout).toMatch(
      /-o, --output +output format +\[choices: "table", "json"\] \[default: "table"\]/,
    );
    expect(status.stdout).toMatch(/--timeout-ms +how long to wait for weftd +\[number\] \[default: 5000\]/);
  });

  it('prints the version', async () => {
    expect((await weftctl(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect((await weftctl(['leases', '--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
