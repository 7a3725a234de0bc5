// A small, safe markdown renderer for chat replies: escapes HTML first, then code fences,
// inline code, headings, bold, italics, lists and paragraphs. Returns an HTML string.
"use strict";
const PolyMarkdown = (() => {
  const escape = (text) => text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const inline = (text) => text
    .replace(/`([^`\n]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<em>$2</em>");
  function block(text) {
    const out = [];
    let list = null;
    for (const line of text.split("\n")) {
      const item = /^\s*(?:[-*]|\d+\.)\s+(.*)$/.exec(line);
      const heading = /^(#{1,4})\s+(.*)$/.exec(line);
      if (item) { (list = list || []).push(`<li>${inline(item[1])}</li>`); continue; }
      if (list) { out.push(`<ul>${list.join("")}</ul>`); list = null; }
      if (heading) out.push(`<h${heading[1].length + 2}>${inline(heading[2])}</h${heading[1].length + 2}>`);
      else if (line.trim() === "") out.push("");
      else out.push(`<p>${inline(line)}</p>`);
    }
    if (list) out.push(`<ul>${list.join("")}</ul>`);
    return out.join("");
  }
  function render(source) {
    const parts = escape(source).split(/```/);
    return parts.map((part, index) => {
      if (index % 2 === 0) return block(part);
      const newline = part.indexOf("\n");
      const lang = newline > 0 ? part.slice(0, newline).trim() : "";
      const code = newline >= 0 ? part.slice(newline + 1) : part;
      return `<pre><code${lang ? ` data-lang="${lang}"` : ""}>${code}</code></pre>`;
    }).join("");
  }
  return { render, escape };
})();
