import { describe, expect, it } from 'vitest';
import { prng } from './lib/prng.js';
import { formatIp, fromMappedV6, parseCidr, parseCidrGeneral, parseIp, toMappedV6 } from '../src/rules/cidr.js';
import { prefixesContaining } from '../src/rules/blocks.js';

describe('parseCidr', () => {
  it.each([
    ['198.18.7.0/24', '198.18.7.0/24', 4, 24],
    ['  198.18.0.0/15 ', '198.18.0.0/15', 4, 15],
    ['0.0.0.0/0', '0.0.0.0/0', 4, 0],
    ['198.18.0.9', '198.18.0.9/32', 4, 32],
    ['FD00:198:0:0::/48', 'fd00:198::/48', 6, 48],
    ['fd00:0198:0000:0000:0000:0000:0000:0001/128', 'fd00:198::1/128', 6, 128],
    ['fd00:198::1', 'fd00:198::1/128', 6, 128],
    ['::/0', '::/0', 6, 0],
    ['fd00:0:0:1:0:0:0:0/64', 'fd00:0:0:1::/64', 6, 64],
  ])('%s → %s', (input, text, family, prefixLen) => {
    const cidr = parseCidr(input);
    expect(cidr).toMatchObject({ text, family, prefixLen });
    expect(cidr.bytes.length).toBe(family === 4 ? 4 : 16);
  });

  it.each([
    ['198.18.1.2/15', /host bits set; did you mean 198\.18\.0\.0\/15/],
    ['fd00:198::1/48', /did you mean fd00:198::\/48/],
    ['198.18.0.0/33', /not an IPv4 or IPv6 CIDR/],
    ['300.1.1.0/24', /not an IPv4/],
    ['198.18.0/24', /not an IPv4/],
    ['fd00::%eth0/64', /zone index/],
    ['', /not an IPv4/],
    ['hello', /not an IPv4/],
    ['198.18.0.0/-1', /not an IPv4/],
  ])('rejects %s', (input, message) => {
    expect(() => parseCidr(input)).toThrow(expect.objectContaining({ code: 'INVALID_CIDR', message: expect.stringMatching(message) }));
  });
});

describe('IPv6 with a dotted IPv4 tail', () => {
  // Only the IPv4-mapped range ::ffff:0:0/96 (and longer) is IPv4; the
  // length shrinks by 96. Every other notation stays IPv6.
  it.each([
    ['2001:db8::198.19.42.1/128', '2001:db8::c613:2a01/128', 6],
    ['2001:db8::198.19.42.1', '2001:db8::c613:2a01/128', 6],
    ['64:ff9b::192.0.2.0/120', '64:ff9b::c000:200/120', 6],
    ['::192.0.2.1', '::c000:201/128', 6],
    ['1:2:3:4:5:6:198.18.0.1', '1:2:3:4:5:6:c612:1/128', 6],
    ['::ffff:192.0.2.0/120', '192.0.2.0/24', 4],
    ['::ffff:192.0.2.7', '192.0.2.7/32', 4],
    ['::FFFF:c000:200/119', '192.0.2.0/23', 4],
    ['::ffff:0:0/96', '0.0.0.0/0', 4],
    ['::fffe:0:0/95', '::fffe:0:0/95', 6],
    ['0:0:0:0:0:ffff:198.18.0.0/111', '198.18.0.0/15', 4],
  ])('%s → %s', (input, text, family) => {
    expect(parseCidr(input)).toMatchObject({ text, family });
  });

  it.each([
    // host bits are checked after the conversion, and named in the stored form
    ['::ffff:192.0.2.1/120', /did you mean 192\.0\.2\.0\/24\?/],
    ['64:ff9b::192.0.2.0/96', /did you mean 64:ff9b::\/96\?/],
    ['::ffff:1.2.3.04', /not an IPv4 or IPv6 CIDR/],
    ['::ffff:1.2.3', /not an IPv4 or IPv6 CIDR/],
    ['1:2:3:4:5:6:7:1.2.3.4', /not an IPv4 or IPv6 CIDR/],
    ['1.2.3.4::', /not an IPv4 or IPv6 CIDR/],
    ['1::2::3', /not an IPv4 or IPv6 CIDR/],
    ['1:2:3:4:5:6:7:8:9', /not an IPv4 or IPv6 CIDR/],
    ['12345::/16', /not an IPv4 or IPv6 CIDR/],
    ['fd00::/048', /not an IPv4 or IPv6 CIDR/],
    ['fd00::/129', /not an IPv4 or IPv6 CIDR/],
    [':::', /not an IPv4 or IPv6 CIDR/],
  ])('rejects %s', (input, message) => {
    expect(() => parseCidr(input)).toThrow(expect.objectContaining({ code: 'INVALID_CIDR', message: expect.stringMatching(message) }));
  });

  it('reads an IPv4-mapped address as the IPv4 address, anything else as IPv6', () => {
    expect(parseIp('::ffff:198.18.0.1')).toMatchObject({ family: 4, text: '198.18.0.1' });
    expect(parseIp('2001:db8::198.18.0.1')).toMatchObject({ family: 6, text: '2001:db8::c612:1' });
  });
});

describe('formatIp (RFC 5952)', () => {
  const v6 = (groups: number[]) => new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff]));
  it.each([
    [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0xfd00, 0, 0, 0, 0, 0, 0, 0], 'fd00::'],
    [[0xfd00, 0, 0, 1, 0, 0, 1, 1], 'fd00::1:0:0:1:1'], // first of two equal runs
    [[0xfd00, 0, 0, 1, 0, 0, 0, 1], 'fd00:0:0:1::1'], // the longer run, even when later
    [[0xfd00, 1, 0, 1, 1, 1, 1, 1], 'fd00:1:0:1:1:1:1:1'], // a single zero group is not compressed
    [[0xfd00, 0, 0, 1, 0, 0, 0, 0], 'fd00:0:0:1::'], // the longest run wins
  ])('%j → %s', (groups, text) => expect(formatIp(v6(groups))).toBe(text));
});

describe('containment', () => {
  it('lists every canonical prefix containing an address', () => {
    const v4 = prefixesContaining('198.18.7.9');
    expect(v4).toHaveLength(33);
    expect(v4).toContain('198.18.0.0/15');
    expect(v4).toContain('198.18.7.9/32');
    expect(v4[0]).toBe('0.0.0.0/0');
    const v6 = prefixesContaining('fd00:198::7');
    expect(v6).toHaveLength(129);
    expect(v6).toContain('fd00:198::/48');
  });

  it('maps IPv4 into IPv6 and back the way flow keys store it', () => {
    const mapped = toMappedV6(parseIp('198.18.0.1'));
    expect(formatIp(mapped)).toBe('::ffff:c612:1');
    expect(fromMappedV6(mapped)).toMatchObject({ family: 4, text: '198.18.0.1' });
    expect(fromMappedV6(toMappedV6(parseIp('fd00:198::2')))).toMatchObject({ family: 6, text: 'fd00:198::2' });
  });
});

describe('the IPv4 fast path', () => {
  const outcome = (parse: () => unknown) => {
    try {
      return parse();
    } catch (error) {
      return (error as Error).message;
    }
  };

  it('agrees with the general (ip-cidr) path on 20,000 seeded near-miss inputs', () => {
    const random = prng(2026);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const octets = ['0', '1', '9', '10', '99', '100', '198', '199', '255', '256', '300', '01', '001', '', '-1', '1a'];
    const lengths = ['', '/0', '/1', '/8', '/15', '/16', '/24', '/31', '/32', '/33', '/015', '/', '/-1', '/3 2'];
    for (let i = 0; i < 20_000; i++) {
      const dots = random() < 0.05 ? 2 : 3;
      let text = pick(octets);
      for (let d = 0; d < dots; d++) text += `.${pick(octets)}`;
      text += pick(lengths);
      const fast = outcome(() => parseCidr(text));
      const general = outcome(() => parseCidrGeneral(text.trim(), text));
      // Both must accept the same texts with the same result; error wording may differ
      // only between "not a CIDR" phrasings, never between accept and reject.
      if (typeof general === 'string') expect(typeof fast, text).toBe('string');
      else expect(fast, text).toEqual(general);
    }
  });
});
