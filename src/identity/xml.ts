// A strict, bounded XML reader for the files identity reads (libvirt's status XML): elements,
// attributes, namespaces, character data, comments, CDATA and processing instructions. No DTD
// (a DOCTYPE is refused, so no entity can expand), no external anything; malformed input throws
// XmlError with the offset. Iterative, so depth is a limit, never a stack overflow.

export interface XmlElement {
  /** namespace URI, '' for none */
  ns: string;
  /** local name (no prefix) */
  name: string;
  /** attributes as written (prefix included), namespace declarations left out */
  attrs: Record<string, string>;
  children: XmlElement[];
  /** character data directly inside this element, entities decoded */
  text: string;
}

export class XmlError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = 'XmlError';
  }
}

export interface XmlLimits {
  maxDepth: number;
  maxElements: number;
  maxAttributes: number;
}
export const XML_LIMITS: XmlLimits = { maxDepth: 64, maxElements: 200_000, maxAttributes: 64 };

const NAME = /[\p{L}_][\p{L}\p{N}._\-\u00B7]*(?::[\p{L}_][\p{L}\p{N}._\-\u00B7]*)?/uy;
/** A-Z a-z _ */
const isNameStart = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
/** and 0-9 . - */
const isNameChar = (c: number) => isNameStart(c) || (c >= 48 && c <= 57) || c === 46 || c === 45;
const ENTITY = /&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));/y;
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

interface Open {
  el: XmlElement;
  qname: string;
  scope: Map<string, string>;
}

function decode(s: string, at: number): string {
  if (!s.includes('&')) return s;
  let out = '';
  let i = 0;
  for (let amp = s.indexOf('&'); amp >= 0; amp = s.indexOf('&', i)) {
    out += s.slice(i, amp);
    ENTITY.lastIndex = amp;
    const m = ENTITY.exec(s);
    if (!m) throw new XmlError('unknown or malformed entity reference', at + amp);
    if (m[1]) out += NAMED[m[1]];
    else {
      const cp = m[2] ? Number(m[2]) : parseInt(m[3], 16);
      if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new XmlError('invalid character reference', at + amp);
      out += String.fromCodePoint(cp);
    }
    i = ENTITY.lastIndex;
  }
  return out + s.slice(i);
}

/** Parse a whole document; returns its root element. */
export function parseXml(src: string, limits: XmlLimits = XML_LIMITS): XmlElement {
  const n = src.length;
  let i = src.charCodeAt(0) === 0xfeff ? 1 : 0;
  const stack: Open[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  const rootScope = new Map([['xml', XML_NS]]);

  const expect = (s: string, what: string) => {
    const end = src.indexOf(s, i);
    if (end < 0) throw new XmlError(`unterminated ${what}`, i);
    return end;
  };
  const name = (what: string): string => {
    // ASCII names (all libvirt and Nova write) by char code; anything else by the full rule
    const start = i;
    let c = src.charCodeAt(i);
    if (isNameStart(c)) {
      let colons = 0;
      for (c = src.charCodeAt(++i); isNameChar(c) || (c === 58 && colons++ === 0 && isNameStart(src.charCodeAt(i + 1))); c = src.charCodeAt(++i));
      if (c < 128) return src.slice(start, i);
      i = start;
    }
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) throw new XmlError(`expected ${what}`, i);
    i = NAME.lastIndex;
    return m[0];
  };
  const space = () => {
    const start = i;
    for (let c = src.charCodeAt(i); c === 32 || c === 10 || c === 9 || c === 13; c = src.charCodeAt(++i));
    return i > start;
  };

  while (i < n) {
    const lt = src.indexOf('<', i);
    const textEnd = lt < 0 ? n : lt;
    if (textEnd > i) {
      const chunk = src.slice(i, textEnd);
      // whitespace-only runs are indentation: dropped (they would only be trimmed away)
      if (/\S/.test(chunk)) {
        if (!stack.length) throw new XmlError('text outside the root element', i);
        stack[stack.length - 1].el.text += decode(chunk, i);
      }
      i = textEnd;
      continue;
    }
    if (src.startsWith('<!--', i)) {
      i = expect('-->', 'comment') + 3;
    } else if (src.startsWith('<![CDATA[', i)) {
      if (!stack.length) throw new XmlError('CDATA outside the root element', i);
      const end = expect(']]>', 'CDATA section');
      stack[stack.length - 1].el.text += src.slice(i + 9, end);
      i = end + 3;
    } else if (src.startsWith('<?', i)) {
      i = expect('?>', 'processing instruction') + 2;
    } else if (src.startsWith('<!', i)) {
      throw new XmlError('DOCTYPE and markup declarations are not accepted', i);
    } else if (src.startsWith('</', i)) {
      const at = i;
      i += 2;
      const qname = name('an end tag name');
      space();
      if (src[i] !== '>') throw new XmlError('expected > in end tag', i);
      i++;
      const top = stack.pop();
      if (!top || top.qname !== qname) throw new XmlError(`end tag </${qname}> does not match ${top ? `<${top.qname}>` : 'any open element'}`, at);
    } else {
      const at = i;
      if (root && !stack.length) throw new XmlError('a second root element', at);
      if (++elements > limits.maxElements) throw new XmlError(`more than ${limits.maxElements} elements`, at);
      if (stack.length >= limits.maxDepth) throw new XmlError(`nested deeper than ${limits.maxDepth}`, at);
      i++;
      const qname = name('an element name');
      const attrs: Record<string, string> = {};
      const parent = stack.length ? stack[stack.length - 1].scope : rootScope;
      let scope = parent;
      let declared: Set<string> | undefined; // namespace prefixes declared on this element
      let count = 0;
      let selfClosing = false;
      let prefixedAttrs = false;
      for (;;) {
        const spaced = space();
        if (src.startsWith('/>', i)) {
          selfClosing = true;
          i += 2;
          break;
        }
        if (src[i] === '>') {
          i++;
          break;
        }
        if (i >= n) throw new XmlError(`unterminated start tag <${qname}>`, at);
        if (!spaced) throw new XmlError('expected whitespace before an attribute', i);
        const an = name('an attribute name');
        space();
        if (src[i] !== '=') throw new XmlError(`expected = after attribute ${an}`, i);
        i++;
        space();
        const q = src[i];
        if (q !== '"' && q !== "'") throw new XmlError(`expected a quoted value for attribute ${an}`, i);
        const end = src.indexOf(q, i + 1);
        if (end < 0) throw new XmlError(`unterminated value of attribute ${an}`, i);
        const raw = src.slice(i + 1, end);
        if (raw.includes('<')) throw new XmlError(`< in the value of attribute ${an}`, i);
        const value = decode(raw, i + 1);
        i = end + 1;
        if (++count > limits.maxAttributes) throw new XmlError(`more than ${limits.maxAttributes} attributes`, at);
        if (an === 'xmlns' || an.startsWith('xmlns:')) {
          if (scope === parent) scope = new Map(parent);
          const prefix = an === 'xmlns' ? '' : an.slice(6);
          if (declared?.has(prefix)) throw new XmlError(`duplicate attribute ${an}`, at);
          (declared ??= new Set()).add(prefix);
          scope.set(prefix, value);
          continue;
        }
        if (an in attrs) throw new XmlError(`duplicate attribute ${an}`, at);
        attrs[an] = value;
        if (an.includes(':')) prefixedAttrs = true;
      }
      const colon = qname.indexOf(':');
      const prefix = colon < 0 ? '' : qname.slice(0, colon);
      const ns = scope.get(prefix);
      if (prefix && !ns) throw new XmlError(`undeclared namespace prefix ${prefix}`, at);
      if (prefixedAttrs)
        for (const a of Object.keys(attrs)) {
          const p = a.indexOf(':');
          if (p > 0 && !scope.get(a.slice(0, p))) throw new XmlError(`undeclared namespace prefix ${a.slice(0, p)}`, at);
        }
      const el: XmlElement = { ns: ns ?? '', name: colon < 0 ? qname : qname.slice(colon + 1), attrs, children: [], text: '' };
      if (stack.length) stack[stack.length - 1].el.children.push(el);
      else root = el;
      if (!selfClosing) stack.push({ el, qname, scope });
    }
  }
  if (stack.length) throw new XmlError(`unclosed element <${stack[stack.length - 1].qname}>`, n);
  if (!root) throw new XmlError('no root element', n);
  return root;
}

/** The first child element named `name` in namespace `ns`. */
export function child(el: XmlElement | undefined, name: string, ns = ''): XmlElement | undefined {
  return el?.children.find((c) => c.name === name && c.ns === ns);
}

export function children(el: XmlElement | undefined, name: string, ns = ''): XmlElement[] {
  return el ? el.children.filter((c) => c.name === name && c.ns === ns) : [];
}
