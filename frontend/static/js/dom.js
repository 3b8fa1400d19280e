// Building elements. Text always goes in as textContent, never as HTML.

export function element(tag, { className, text } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  node.append(...children);
  return node;
}

export function sameUser(a, b) {
  return a.toLowerCase() === b.toLowerCase();
}
