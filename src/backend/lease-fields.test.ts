import { describe, expect, it } from 'vitest';
import { dataField } from './lease-fields.js';

describe('dataField', () => {
  it('reads a backend-data field whatever its case, as Go decodes flannel leases', () => {
    expect(dataField({ vtepmac: '02:00:00:00:00:01' }, 'VtepMAC')).toBe('02:00:00:00:00:01');
    expect(dataField({ VNI: 1 }, 'vni')).toBe(1);
    expect(dataField({ VNI: 1 }, 'Port')).toBeUndefined();
    expect(dataField(undefined, 'VNI')).toBeUndefined();
  });

  it('prefers the exact spelling over another case of the same name', () => {
    expect(dataField({ vni: 2, VNI: 1 }, 'VNI')).toBe(1);
    expect(dataField({ VNI: 1, vni: 2 }, 'vni')).toBe(2);
  });

  it('never reads inherited properties', () => {
    expect(dataField({}, 'constructor')).toBeUndefined();
    expect(dataField({}, 'toString')).toBeUndefined();
  });
});
