// Which key a client address is counted under by the per-address limits.
import { describe, expect, it } from 'vitest';
import { addressGroup } from '../src/doors/limits.ts';

describe('a client address is counted with the network one client holds', () => {
  it('counts an IPv6 address with its /64, however it is written', () => {
    for (const address of [
      '2001:db8:1:2:3:4:5:6',
      '2001:0DB8:0001:0002::9',
      '[2001:db8:1:2::5]',
      '2001:db8:1:2:3:4:5::',
      '2001:db8:1:2::1.2.3.4',
    ]) {
      expect(addressGroup(address), address).toBe('2001:db8:1:2::/64');
    }
    expect(addressGroup('2001:db8::1')).toBe('2001:db8::/64');
    expect(addressGroup('2001:0:1:2::1')).toBe('2001:0:1:2::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80::/64');
    expect(addressGroup('::1')).toBe('::/64');
  });

  it('keeps different /64s apart', () => {
    expect(addressGroup('2001:db8:1:3::1')).not.toBe(addressGroup('2001:db8:1:2::1'));
    expect(addressGroup('2001:db8:1:2::1')).not.toBe(addressGroup('2001:db8:0:1:2::1'));
  });

  it('counts an IPv4-mapped address as the IPv4 address it is', () => {
    expect(addressGroup('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressGroup('::FFFF:cb00:7107')).toBe('203.0.113.7');
    expect(addressGroup('203.0.113.7')).toBe('203.0.113.7');
  });

  it('counts an address translated from IPv4 (64:ff9b::/96) as the IPv4 address in it', () => {
    expect(addressGroup('64:ff9b::203.0.113.7')).toBe('203.0.113.7');
    expect(addressGroup('64:ff9b::cb00:7107')).toBe('203.0.113.7');
    expect(addressGroup('64:ff9b:1::1')).toBe('64:ff9b:1::/64');
  });

  it('leaves out a port a proxy wrote after the address', () => {
    expect(addressGroup('203.0.113.7:51234')).toBe('203.0.113.7');
    expect(addressGroup('[2001:db8:1:2::5]:443')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('[::ffff:203.0.113.7]:80')).toBe('203.0.113.7');
  });

  it('counts anything that is not an IP address as it is written', () => {
    for (const address of [
      '',
      'unknown',
      '1:2:3:4:5:6:7:8:9',
      '2001:db8:::1',
      '1::2::3',
      '12345::1',
      '::ffff:300.1.1.1',
      'g::1',
    ])
      expect(addressGroup(address), address).toBe(address);
  });
});
