// Links in message text: http(s) addresses become <a> elements built from text, never HTML.

const CANDIDATE = /\bhttps?:\/\/[^\s<>"]+/gi;
// Punctuation that ends a sentence rather than an address ("see https://x.org/a.").
const TRAILING = /[.,;:!?'"\])}]+$/;

// The text as nodes: plain runs as text nodes, each http or https address as a link.
export function linkify(text) {
  const nodes = [];
  let from = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const address = trimmed(match[0]);
    const url = safeUrl(address);
    if (!url) continue;
    if (match.index > from) nodes.push(document.createTextNode(text.slice(from, match.index)));
    nodes.push(link(url, address));
    from = match.index + address.length;
  }
  if (from < text.length) nodes.push(document.createTextNode(text.slice(from)));
  return nodes;
}

function trimmed(address) {
  let end = address.replace(TRAILING, "");
  // Keep a closing parenthesis that closes one opened in the address (Wikipedia links).
  const rest = address.slice(end.length);
  if (rest.startsWith(")") && count(end, "(") > count(end, ")")) end += ")";
  return end;
}

function count(text, character) {
  return text.split(character).length - 1;
}

function safeUrl(address) {
  try {
    const url = new URL(address);
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

function link(url, address) {
  const anchor = document.createElement("a");
  anchor.href = url.href;
  anchor.textContent = address;
  anchor.target = "_blank";
  anchor.rel = "noopener noreferrer";
  return anchor;
}
