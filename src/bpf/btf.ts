// Reads struct layouts, enums and .rodata variables from a loaded object's BTF (through libbpf).
import koffi from 'koffi';
import { BTF_KIND_DATASEC, BTF_KIND_STRUCT, libbpf } from './libbpf.js';
import type { BtfStruct } from './abi.js';

const U32 = 'uint32_t';

function header(ptr: unknown): { nameOff: number; vlen: number; kind: number; kflag: boolean; size: number } {
  const [nameOff, info, size] = koffi.decode(ptr, koffi.array(U32, 3)) as number[];
  return { nameOff, vlen: info & 0xffff, kind: (info >>> 24) & 0x1f, kflag: info >>> 31 === 1, size };
}

// members follow the 12-byte header: { name_off, type, offset } each
function members(ptr: unknown, vlen: number): number[][] {
  const all = koffi.decode(ptr, koffi.array(U32, 3 + 3 * vlen)) as number[];
  const out: number[][] = [];
  for (let i = 0; i < vlen; i++) out.push(all.slice(3 + 3 * i, 6 + 3 * i));
  return out;
}

export function btfStruct(btf: unknown, name: string): BtfStruct | undefined {
  const l = libbpf();
  const id = l.btf_find_by_name_kind(btf, name, BTF_KIND_STRUCT) as number;
  if (id < 0) return undefined;
  const ptr = l.btf_type_by_id(btf, id);
  const h = header(ptr);
  const out: BtfStruct = { size: h.size, members: new Map() };
  for (const [nameOff, type, offset] of members(ptr, h.vlen)) {
    const bitOff = h.kflag ? offset & 0xffffff : offset;
    out.members.set(l.btf_name_by_offset(btf, nameOff) as string, {
      offset: bitOff / 8,
      size: Number(l.btf_resolve_size(btf, type)),
    });
  }
  return out;
}

const BTF_KIND_ENUM = 6;

/** An enum's members and values ({ name_off, val } pairs after the header), or undefined. */
export function btfEnum(btf: unknown, name: string): Map<string, number> | undefined {
  const l = libbpf();
  const id = l.btf_find_by_name_kind(btf, name, BTF_KIND_ENUM) as number;
  if (id < 0) return undefined;
  const ptr = l.btf_type_by_id(btf, id);
  const h = header(ptr);
  const all = koffi.decode(ptr, koffi.array(U32, 3 + 2 * h.vlen)) as number[];
  const out = new Map<string, number>();
  for (let i = 0; i < h.vlen; i++) {
    const raw = all[3 + 2 * i + 1];
    // kflag set: signed values (BTF_KIND_ENUM stores 32 bits)
    out.set(l.btf_name_by_offset(btf, all[3 + 2 * i]) as string, h.kflag ? raw | 0 : raw >>> 0);
  }
  return out;
}

/** Offsets of the variables in a data section (e.g. `.rodata`), by variable name. */
export function btfDatasec(btf: unknown, section: string): Map<string, { offset: number; size: number }> {
  const l = libbpf();
  const out = new Map<string, { offset: number; size: number }>();
  const id = l.btf_find_by_name_kind(btf, section, BTF_KIND_DATASEC) as number;
  if (id < 0) return out;
  const ptr = l.btf_type_by_id(btf, id);
  const h = header(ptr);
  // var_secinfo: { type, offset, size }
  for (const [varType, offset, size] of members(ptr, h.vlen)) {
    const v = header(l.btf_type_by_id(btf, varType));
    out.set(l.btf_name_by_offset(btf, v.nameOff) as string, { offset, size });
  }
  return out;
}
