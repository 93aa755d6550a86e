// The bounded XML reader (src/identity/xml.ts) and what identity reads with it from libvirt's
// status files (src/identity/libvirt-xml.ts): fixtures in libvirt's own format
// (test/fixtures/libvirt/, see its README), with and without Nova's metadata.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { identityOf, LibvirtXmlError, parseDomainStatus } from '../../src/identity/libvirt-xml.js';
import { child, parseXml, XmlError } from '../../src/identity/xml.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

const fixture = (name: string) => readFileSync(join(PACKAGE_ROOT, 'test/fixtures/libvirt', name), 'utf8');

describe('parseXml', () => {
  it('reads elements, attributes in either quote, text with entities, CDATA, comments and PIs', () => {
    const root = parseXml(`\uFEFF<?xml version="1.0"?>\n<!-- c --><a x='1' y="&lt;2&gt;"><b>t &amp; &#65;&#x42;</b><c/><![CDATA[<raw>&amp;]]><?pi x?></a>\n`);
    expect(root).toMatchObject({ ns: '', name: 'a', attrs: { x: '1', y: '<2>' } });
    expect(root.children.map((c) => c.name)).toEqual(['b', 'c']);
    expect(child(root, 'b')!.text).toBe('t & AB');
    expect(root.text).toBe('<raw>&amp;');
  });

  it('resolves namespaces: default, prefixed, redeclared and undeclared with xmlns=""', () => {
    const root = parseXml('<r xmlns="urn:d" xmlns:p="urn:p1"><p:a><p:b xmlns:p="urn:p2"/></p:a><c xmlns=""/><d/></r>');
    expect(root.ns).toBe('urn:d');
    const a = root.children[0];
    expect([a.ns, a.name]).toEqual(['urn:p1', 'a']);
    expect([a.children[0].ns, a.children[0].name]).toEqual(['urn:p2', 'b']);
    expect(root.children[1].ns).toBe('');
    expect(root.children[2].ns).toBe('urn:d');
    expect(root.attrs).toEqual({}); // declarations are not attributes
  });

  it('reads names beyond ASCII (another application\'s metadata may use them)', () => {
    const root = parseXml('<r xmlns:m="urn:m"><m:Größe wert="1">x</m:Größe><é/></r>');
    expect(root.children.map((c) => [c.ns, c.name])).toEqual([['urn:m', 'Größe'], ['', 'é']]);
  });

  it.each([
    ['an unclosed element', '<a><b></b>', /unclosed element <a>/],
    ['a mismatched end tag', '<a><b></a></b>', /end tag <\/a> does not match <b>/],
    ['an end tag with nothing open', '<a/></a>', /does not match any open element/],
    ['a DOCTYPE (no entity can expand)', '<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>', /DOCTYPE/],
    ['an unknown entity', '<a>&nbsp;</a>', /unknown or malformed entity/],
    ['a bare ampersand', '<a>fish & chips</a>', /unknown or malformed entity/],
    ['a NUL character reference', '<a>&#0;</a>', /invalid character reference/],
    ['a surrogate character reference', '<a>&#xD800;</a>', /invalid character reference/],
    ['an undeclared element prefix', '<n:a/>', /undeclared namespace prefix n/],
    ['an undeclared attribute prefix', '<a n:x="1"/>', /undeclared namespace prefix n/],
    ['a duplicate attribute', '<a x="1" x="2"/>', /duplicate attribute x/],
    ['a duplicate namespace declaration', '<a xmlns:p="u" xmlns:p="v"/>', /duplicate attribute xmlns:p/],
    ['an unquoted attribute', '<a x=1/>', /quoted value/],
    ['< in an attribute value', '<a x="<"/>', /< in the value/],
    ['attributes without space between', '<a x="1"y="2"/>', /whitespace before an attribute/],
    ['text outside the root', 'junk<a/>', /text outside the root/],
    ['two roots', '<a/><b/>', /a second root element/],
    ['no root at all', '<!-- only a comment -->', /no root element/],
    ['an unterminated comment', '<a><!-- x</a>', /unterminated comment/],
    ['an unterminated start tag', '<a x="1"', /unterminated start tag <a>/],
    ['an empty document', '', /no root element/],
    ['a name with two colons', '<a:b:c xmlns:a="u"/>', /whitespace before an attribute/],
    ['a name starting with a digit', '<1a/>', /expected an element name/],
  ])('refuses %s', (_what, xml, err) => {
    expect(() => parseXml(xml)).toThrow(XmlError);
    expect(() => parseXml(xml)).toThrow(err);
  });

  it('is bounded: depth, elements and attributes have limits, and deep input is no stack overflow', () => {
    const deep = '<a>'.repeat(100_000) + '</a>'.repeat(100_000);
    expect(() => parseXml(deep)).toThrow(/nested deeper than 64/);
    expect(() => parseXml(`<r>${'<x/>'.repeat(20)}</r>`, { maxDepth: 64, maxElements: 10, maxAttributes: 8 })).toThrow(/more than 10 elements/);
    expect(() => parseXml(`<r ${Array.from({ length: 9 }, (_, i) => `a${i}="1"`).join(' ')}/>`, { maxDepth: 64, maxElements: 10, maxAttributes: 8 })).toThrow(/more than 8 attributes/);
    // within the limits, the same shapes are fine
    expect(parseXml('<a>'.repeat(64) + '</a>'.repeat(64)).name).toBe('a');
  });
});

describe('parseDomainStatus: libvirt status files', () => {
  it('a plain libvirt domain: name, uuid, state, every interface with its device and MAC (lower case)', () => {
    const d = parseDomainStatus(fixture('plain.xml'));
    expect(d).toEqual({
      domain: 'debian12',
      uuid: '8f2b6c1e-3a44-4d0b-9d6e-2f6a5b7c9e10',
      state: 'running',
      interfaces: [
        { dev: 'vnet0', mac: '52:54:00:36:bd:3b', type: 'network' },
        { dev: 'vnet1', mac: '52:54:00:aa:bb:01', type: 'bridge' },
        { mac: '52:54:00:aa:bb:02', type: 'hostdev' }, // an SR-IOV VF: no host device, its MAC only
      ],
    });
    // the <target dev='vda'/> of a disk is not an interface
    expect(identityOf(d, d.interfaces[0])).toEqual({ name: 'debian12', uuid: d.uuid, namespace: '', source: 'libvirt', domain: 'debian12', mac: '52:54:00:36:bd:3b' });
  });

  it('a Nova instance mid-migration: the display name and project from <nova:instance>, the domain uuid', () => {
    const d = parseDomainStatus(fixture('nova.xml'));
    expect(d).toEqual({
      domain: 'instance-0000002a',
      uuid: '3c1f8e2a-6b7d-4e0f-9a1b-2c3d4e5f6a7b',
      state: 'paused',
      nova: { name: 'web-7', project: { uuid: '9f8e7d6c5b4a39281706f5e4d3c2b1a0', name: 'shop' } },
      interfaces: [{ dev: 'tap5e1f2b3c-4d', mac: 'fa:16:3e:5c:21:7a', type: 'bridge' }],
    });
    expect(identityOf(d, d.interfaces[0])).toEqual({
      name: 'web-7',
      uuid: '3c1f8e2a-6b7d-4e0f-9a1b-2c3d4e5f6a7b',
      namespace: 'shop',
      source: 'libvirt',
      domain: 'instance-0000002a',
      project: { uuid: '9f8e7d6c5b4a39281706f5e4d3c2b1a0', name: 'shop' },
      mac: 'fa:16:3e:5c:21:7a',
    });
  });

  it('Nova metadata by namespace, not prefix: the 1.0 namespace under another prefix reads the same', () => {
    const xml = fixture('nova.xml')
      .replace('xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"', 'xmlns:os="http://openstack.org/xmlns/libvirt/nova/1.0"')
      .replace(/<(\/?)nova:/g, '<$1os:');
    expect(parseDomainStatus(xml).nova).toEqual({ name: 'web-7', project: { uuid: '9f8e7d6c5b4a39281706f5e4d3c2b1a0', name: 'shop' } });
  });

  it('ignores look-alike metadata: another namespace, or nova: elements outside <metadata>', () => {
    const other = fixture('nova.xml').replace('http://openstack.org/xmlns/libvirt/nova/1.1', 'http://example.com/not-nova');
    expect(parseDomainStatus(other).nova).toBeUndefined();
    expect(identityOf(parseDomainStatus(other), {}).name).toBe('instance-0000002a');
  });

  it('reads a bare <domain> too (the live XML as virsh dumpxml prints it)', () => {
    const bare = fixture('plain.xml').replace(/^[\s\S]*?(<domain )/, '$1').replace(/<\/domstatus>\s*$/, '');
    expect(parseDomainStatus(bare)).toMatchObject({ domain: 'debian12', interfaces: [{ dev: 'vnet0' }, { dev: 'vnet1' }, {}] });
    expect(parseDomainStatus(bare).state).toBeUndefined();
  });

  it.each([
    ['not XML', 'this is not xml', XmlError, /text outside the root/],
    ['cut short', fixture('plain.xml').slice(0, 2000), XmlError, /unclosed element/],
    ['another document', '<network><name>default</name></network>', LibvirtXmlError, /root element <network>: not a libvirt status file/],
    ['a namespaced root', '<domstatus xmlns="urn:x"/>', LibvirtXmlError, /in namespace urn:x/],
    ['a status without its domain', "<domstatus state='running'><taint flag='x'/></domstatus>", LibvirtXmlError, /<domstatus> without <domain>/],
    ['a domain without a name', "<domstatus><domain type='kvm'><uuid>u</uuid></domain></domstatus>", LibvirtXmlError, /without <name>/],
  ])('refuses %s with a clear error', (_what, xml, type, msg) => {
    expect(() => parseDomainStatus(xml)).toThrow(type);
    expect(() => parseDomainStatus(xml)).toThrow(msg);
  });

  it('bounds what it keeps: a 10 kB name is clipped for the labels, a bogus device name dropped', () => {
    const xml = fixture('plain.xml').replace('<name>debian12</name>', `<name>${'n'.repeat(10_000)}</name>`).replace("dev='vnet0'", "dev='not/a device'");
    const d = parseDomainStatus(xml);
    expect(d.domain).toHaveLength(256);
    expect(d.interfaces[0]).toEqual({ mac: '52:54:00:36:bd:3b', type: 'network' });
  });
});
