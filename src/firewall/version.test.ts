import { describe, expect, it } from 'vitest';
import { parseIptablesVersion } from './firewall.js';

describe('parseIptablesVersion', () => {
  it('reads the version and backend of iptables -V', () => {
    expect(parseIptablesVersion('iptables v1.8.9 (nf_tables)\n')).toEqual({
      version: '1.8.9',
      backend: 'nf_tables',
      randomFully: true,
    });
    expect(parseIptablesVersion('ip6tables v1.8.7 (legacy)')).toMatchObject({
      backend: 'legacy',
      randomFully: true,
    });
    expect(parseIptablesVersion('iptables v1.6.2')).toMatchObject({ backend: 'legacy', randomFully: true });
    expect(parseIptablesVersion('iptables v1.6.1')).toMatchObject({ randomFully: false });
    expect(parseIptablesVersion('iptables v1.4.21')).toMatchObject({ randomFully: false });
  });

  it('says what it could not read', () => {
    expect(() => parseIptablesVersion('command not found')).toThrow(
      /cannot read an iptables version from "command not found"/,
    );
  });
});
