import { describe, expect, it } from 'vitest';
import { type CliOption, FlagError, parseBoolWord, parseFlags, renderHelp } from './flags.js';

const OPTIONS: CliOption[] = [
  { name: 'etcd-prefix', type: 'string', default: '/coreos.com/network', describe: 'prefix', group: 'etcd:' },
  { name: 'healthz-port', type: 'number', default: 0, describe: 'port' },
  { name: 'ip-masq', type: 'boolean', default: false, describe: 'masquerade' },
  { name: 'iptables-forward-rules', type: 'boolean', default: true, describe: 'forward rules' },
  { name: 'iface', type: 'array', default: [], describe: 'interfaces' },
  {
    name: 'output',
    alias: 'o',
    type: 'string',
    choices: ['table', 'json'],
    default: 'table',
    describe: 'format',
  },
];

const values = (argv: string[], maxPositionals = 0) => parseFlags(argv, OPTIONS, { maxPositionals }).values;

function refusal(argv: string[]): string {
  try {
    parseFlags(argv, OPTIONS);
  } catch (err) {
    expect(err).toBeInstanceOf(FlagError);
    return (err as Error).message;
  }
  throw new Error(`${JSON.stringify(argv)} was accepted`);
}

describe('parseFlags', () => {
  it('takes --flag value, --flag=value and Go’s single-dash -flag value / -flag=value', () => {
    for (const argv of [
      ['--etcd-prefix', '/a'],
      ['--etcd-prefix=/a'],
      ['-etcd-prefix', '/a'],
      ['-etcd-prefix=/a'],
    ]) {
      expect(values(argv)).toEqual({ 'etcd-prefix': '/a' });
    }
  });

  it('takes a value that starts with a dash or holds "=" as given', () => {
    expect(values(['--etcd-prefix', '-x'])).toEqual({ 'etcd-prefix': '-x' });
    expect(values(['--etcd-prefix=/a=b'])).toEqual({ 'etcd-prefix': '/a=b' });
    expect(values(['--etcd-prefix='])).toEqual({ 'etcd-prefix': '' });
  });

  it('reads booleans as flannel (Go) and weft’s yargs CLI wrote them', () => {
    expect(values(['--ip-masq'])).toEqual({ 'ip-masq': true });
    expect(values(['-ip-masq'])).toEqual({ 'ip-masq': true });
    expect(values(['--ip-masq=false'])).toEqual({ 'ip-masq': false });
    expect(values(['-ip-masq=false'])).toEqual({ 'ip-masq': false });
    expect(values(['--ip-masq=true'])).toEqual({ 'ip-masq': true });
    expect(values(['--ip-masq=1'])).toEqual({ 'ip-masq': true });
    expect(values(['--ip-masq=0'])).toEqual({ 'ip-masq': false });
    expect(values(['--ip-masq=FALSE'])).toEqual({ 'ip-masq': false });
    expect(values(['--ip-masq', 'false'])).toEqual({ 'ip-masq': false });
    expect(values(['--ip-masq', 'true'])).toEqual({ 'ip-masq': true });
    expect(values(['--no-ip-masq'])).toEqual({ 'ip-masq': false });
    expect(values(['--no-iptables-forward-rules'])).toEqual({ 'iptables-forward-rules': false });
    expect(values(['--iptables-forward-rules=false'])).toEqual({ 'iptables-forward-rules': false });
    // A bare word after a boolean that is not true/false is a positional, not its value.
    expect(() => values(['--ip-masq', 'yes'])).toThrow(/Unknown argument: yes/);
  });

  it('refuses a boolean value that is not one', () => {
    expect(refusal(['--ip-masq=yes'])).toBe('--ip-masq: "yes" is not a boolean (true or false)');
    expect(refusal(['--no-ip-masq=true'])).toMatch(/--no-ip-masq: "true" is not a boolean/);
  });

  it('collects a repeated list flag in order, also its bare following words', () => {
    expect(values(['--iface', 'eth0', '--iface=eth1', '-iface', '10.0.0.1'])).toEqual({
      iface: ['eth0', 'eth1', '10.0.0.1'],
    });
    expect(values(['--iface', 'eth0', 'eth1', '--ip-masq'])).toEqual({
      iface: ['eth0', 'eth1'],
      'ip-masq': true,
    });
    // Commas are split by the options' validation (toDaemonOptions), as flannel's string slices.
    expect(values(['--iface=eth0,eth1'])).toEqual({ iface: ['eth0,eth1'] });
  });

  it('lets the last of a repeated single-value flag win (Go’s flag package)', () => {
    expect(values(['--etcd-prefix=/a', '--etcd-prefix=/b'])).toEqual({ 'etcd-prefix': '/b' });
    expect(values(['--healthz-port=1', '--healthz-port', '2'])).toEqual({ 'healthz-port': 2 });
  });

  it('reads numbers and refuses what is not one', () => {
    expect(values(['--healthz-port', '8471'])).toEqual({ 'healthz-port': 8471 });
    expect(values(['--healthz-port=0x10'])).toEqual({ 'healthz-port': 16 });
    expect(refusal(['--healthz-port=abc'])).toBe('--healthz-port: "abc" is not a number');
    expect(refusal(['--healthz-port='])).toBe('--healthz-port: "" is not a number');
  });

  it('takes short aliases and checks choices', () => {
    expect(values(['-o', 'json'])).toEqual({ output: 'json' });
    expect(values(['-o=json'])).toEqual({ output: 'json' });
    expect(values(['--output=json'])).toEqual({ output: 'json' });
    expect(refusal(['-o', 'xml'])).toBe('--output: "xml" is not one of "table", "json"');
  });

  it('takes camelCase names as yargs did', () => {
    expect(values(['--etcdPrefix=/a', '--ipMasq'])).toEqual({ 'etcd-prefix': '/a', 'ip-masq': true });
  });

  it('refuses unknown flags, a missing value and stray arguments', () => {
    expect(refusal(['--no-such-flag'])).toBe('Unknown argument: no-such-flag');
    expect(refusal(['--no-such-flag=1'])).toBe('Unknown argument: no-such-flag');
    expect(refusal(['-x'])).toBe('Unknown argument: x');
    expect(refusal(['-iface-typo=eth0'])).toMatch(/^Unknown argument/);
    expect(refusal(['--no-etcd-prefix'])).toBe('Unknown argument: no-etcd-prefix');
    expect(refusal(['--etcd-prefix'])).toBe('--etcd-prefix: needs a value');
    expect(refusal(['stray'])).toBe('Unknown argument: stray');
    expect(refusal(['--', '--ip-masq'])).toBe('Unknown argument: --ip-masq');
  });

  it('keeps positionals up to the bound, also after --', () => {
    expect(parseFlags(['f.json', '--ip-masq'], OPTIONS, { maxPositionals: 1 }).positionals).toEqual([
      'f.json',
    ]);
    expect(parseFlags(['--', '-f.json'], OPTIONS, { maxPositionals: 1 }).positionals).toEqual(['-f.json']);
    expect(() => parseFlags(['a', 'b'], OPTIONS, { maxPositionals: 1 })).toThrow('Unknown argument: b');
  });

  it('reports --help, -h and --version, and fills defaults only when asked', () => {
    expect(parseFlags(['--help'], OPTIONS).help).toBe(true);
    expect(parseFlags(['-h'], OPTIONS).help).toBe(true);
    expect(parseFlags(['--version'], OPTIONS).version).toBe(true);
    expect(parseFlags([], OPTIONS).values).toEqual({});
    expect(parseFlags(['--ip-masq'], OPTIONS, { withDefaults: true }).values).toEqual({
      'etcd-prefix': '/coreos.com/network',
      'healthz-port': 0,
      'ip-masq': true,
      'iptables-forward-rules': true,
      iface: [],
      output: 'table',
    });
  });

  it('reads Go’s boolean words', () => {
    for (const word of ['1', 't', 'T', 'true', 'TRUE', 'True']) expect(parseBoolWord(word)).toBe(true);
    for (const word of ['0', 'f', 'F', 'false', 'FALSE', 'False']) expect(parseBoolWord(word)).toBe(false);
    for (const word of ['', 'yes', 'on', 'tRuE']) expect(parseBoolWord(word)).toBeUndefined();
  });
});

describe('renderHelp', () => {
  it('groups options, shows types, choices and defaults, and wraps to the width', () => {
    const text = renderHelp(
      {
        usage: 'x [flags]',
        description: 'does x',
        commands: [{ usage: 'x y', describe: 'the y' }],
        options: OPTIONS,
      },
      80,
    );
    const lines = text.split('\n');
    expect(lines.slice(0, 3)).toEqual(['x [flags]', '', 'does x']);
    expect(text).toContain('Commands:\n  x y  the y\n');
    expect(text).toMatch(
      /etcd:\n {6}--etcd-prefix +prefix +\[string\] \[default: "\/coreos\.com\/network"\]\n/,
    );
    expect(text).toMatch(/ {2}-o, --output +format\s+\[choices: "table", "json"\] \[default: "table"\]/);
    expect(text).toMatch(/--iface +interfaces +\[array\] \[default: \[\]\]/);
    expect(text).toMatch(/ {2}-h, --help +Show help +\[boolean\]/);
    expect(text).toMatch(/--version +Show version number/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
  });
});
