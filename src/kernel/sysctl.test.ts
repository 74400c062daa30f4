import { describe, expect, it } from 'vitest';
import { readSysctl, SysctlError, sysctlPath } from './sysctl.js';

describe('sysctl keys', () => {
  it('maps dotted and slashed keys to /proc/sys paths', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('net/ipv4/ip_forward');
    expect(sysctlPath('net/ipv4/conf/flannel.1/rp_filter')).toBe('net/ipv4/conf/flannel.1/rp_filter');
  });

  it('refuses keys that leave /proc/sys', () => {
    for (const key of ['../etc/passwd', 'net/../../etc', '/net/ipv4', 'net.ipv4.', 'a b']) {
      expect(() => sysctlPath(key)).toThrow(SysctlError);
    }
  });

  it('reads a value of the current namespace', async () => {
    expect(['0', '1']).toContain(await readSysctl('net.ipv4.ip_forward'));
    await expect(readSysctl('net.ipv4.no_such_key')).rejects.toThrow(/net.ipv4.no_such_key/);
  });
});
