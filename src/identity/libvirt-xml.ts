// What bridgewatch reads from a libvirt status file (/run/libvirt/qemu/<name>.xml): libvirt
// wraps the live domain XML in <domstatus> (virDomainObjFormat: state, pid, the driver's
// private data, then <domain>). From <domain>: name, uuid, each <interface>'s <mac address> and
// <target dev>, and OpenStack Nova's <metadata><nova:instance> (namespace
// http://openstack.org/xmlns/libvirt/nova/1.1, 1.0 before): nova:name, nova:owner/nova:project.
// Nova names the libvirt domain instance-XXXXXXXX and gives it the instance's uuid.
import { child, children, parseXml, type XmlElement } from './xml.js';
import { clip, normalMac, PORT_RE, type VmIdentity } from './types.js';

const NOVA_NS_PREFIX = 'http://openstack.org/xmlns/libvirt/nova/';

export interface LibvirtInterface {
  /** host device (tap, vnet, macvtap); none for hostdev or vhost-user interfaces */
  dev?: string;
  mac?: string;
  type?: string;
}

export interface LibvirtDomain {
  domain: string;
  uuid: string;
  /** <domstatus state=...>: running, paused (e.g. an incoming migration), ... */
  state?: string;
  nova?: { name?: string; project?: { uuid: string; name: string } };
  interfaces: LibvirtInterface[];
}

export class LibvirtXmlError extends Error {
  override name = 'LibvirtXmlError';
}

const textOf = (el: XmlElement | undefined): string => el?.text.trim() ?? '';

function novaOf(domain: XmlElement): LibvirtDomain['nova'] {
  const inst = child(domain, 'metadata')?.children.find((c) => c.name === 'instance' && c.ns.startsWith(NOVA_NS_PREFIX));
  if (!inst) return undefined;
  const ns = inst.ns;
  const name = textOf(child(inst, 'name', ns));
  const project = child(child(inst, 'owner', ns), 'project', ns);
  return {
    ...(name ? { name: clip(name) } : {}),
    ...(project ? { project: { uuid: clip(project.attrs.uuid ?? ''), name: clip(textOf(project)) } } : {}),
  };
}

/** Parse a status file (or a bare <domain>); throws XmlError or LibvirtXmlError. */
export function parseDomainStatus(xml: string): LibvirtDomain {
  const root = parseXml(xml);
  if (root.ns) throw new LibvirtXmlError(`root element <${root.name}> in namespace ${root.ns}: not a libvirt status file`);
  let domain: XmlElement | undefined;
  if (root.name === 'domstatus') {
    domain = child(root, 'domain');
    if (!domain) throw new LibvirtXmlError('<domstatus> without <domain>');
  } else if (root.name === 'domain') domain = root;
  else throw new LibvirtXmlError(`root element <${root.name}>: not a libvirt status file (<domstatus>)`);

  const name = textOf(child(domain, 'name'));
  if (!name) throw new LibvirtXmlError('<domain> without <name>');
  const interfaces: LibvirtInterface[] = [];
  for (const ifc of children(child(domain, 'devices'), 'interface')) {
    const dev = child(ifc, 'target')?.attrs.dev;
    const mac = normalMac(child(ifc, 'mac')?.attrs.address);
    interfaces.push({
      ...(dev && PORT_RE.test(dev) ? { dev } : {}),
      ...(mac ? { mac } : {}),
      ...(ifc.attrs.type ? { type: ifc.attrs.type } : {}),
    });
  }
  return {
    domain: clip(name),
    uuid: clip(textOf(child(domain, 'uuid'))),
    ...(root.name === 'domstatus' && root.attrs.state ? { state: root.attrs.state } : {}),
    ...(novaOf(domain) ? { nova: novaOf(domain) } : {}),
    interfaces,
  };
}

/** The identity of one interface of a domain: Nova's names when present, libvirt's otherwise. */
export function identityOf(d: LibvirtDomain, ifc: LibvirtInterface): VmIdentity {
  const nova = d.nova;
  return {
    name: nova?.name || d.domain,
    uuid: d.uuid,
    namespace: nova?.project?.name ?? '',
    source: 'libvirt',
    domain: d.domain,
    ...(nova?.project ? { project: nova.project } : {}),
    ...(ifc.mac ? { mac: ifc.mac } : {}),
  };
}
