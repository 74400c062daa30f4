import { describe, expect, it } from 'vitest';
import { parseExposition, sampleValue } from './exposition.js';

const LABELLED_HISTOGRAM = `# HELP gc_seconds GC time by kind.
# TYPE gc_seconds histogram
gc_seconds_bucket{le="0.01",kind="major"} 1
gc_seconds_bucket{le="+Inf",kind="major"} 2
gc_seconds_sum{kind="major"} 0.03
gc_seconds_count{kind="major"} 2
gc_seconds_bucket{le="0.01",kind="minor"} 5
gc_seconds_bucket{le="+Inf",kind="minor"} 5
gc_seconds_sum{kind="minor"} 0.001
gc_seconds_count{kind="minor"} 5
`;

describe('parseExposition', () => {
  it('keeps every series of a histogram with labels besides le, with its count and sum', () => {
    const f = parseExposition(LABELLED_HISTOGRAM);
    const series = f.get('gc_seconds')?.metrics ?? [];
    expect(series).toHaveLength(2);
    expect(series[0]).toEqual({
      labels: { kind: 'major' },
      buckets: { '0.01': '1', '+Inf': '2' },
      sum: '0.03',
      count: '2',
    });
    expect(sampleValue(f, 'gc_seconds', { kind: 'minor' })).toBe(5);
  });

  it('rejects a histogram whose +Inf bucket differs from its count', () => {
    expect(() =>
      parseExposition(
        LABELLED_HISTOGRAM.replace('gc_seconds_count{kind="minor"} 5', 'gc_seconds_count{kind="minor"} 6'),
      ),
    ).toThrow(/\+Inf bucket 5 differs from the count 6/);
  });

  it('rejects buckets that are not cumulative', () => {
    const text = `# HELP h h.
# TYPE h histogram
h_bucket{le="1"} 3
h_bucket{le="2"} 2
h_bucket{le="+Inf"} 3
h_sum 4
h_count 3
`;
    expect(() => parseExposition(text)).toThrow(/bucket le=2 is smaller than the one before/);
  });
});
