// A small, safe markdown renderer for chat replies. Every piece of the source reaches the output
// through escape() (text) or escapeAttr() (the two attributes it writes), so no HTML in a reply is
// ever interpreted. Subset: paragraphs (single newlines kept as <br>), headings, **bold**, *italic*,
// `inline code`, ``` fenced code blocks, bulleted and numbered lists, [links](http(s) URLs only).
// Built for streaming: the whole text is re-rendered as chunks arrive, and an unclosed fence renders
// what has arrived so far as code. Returns an HTML string.
"use strict";
const PolyMarkdown = (() => {
  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escape = (text) => String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
  const escapeAttr = escape; // attribute values are always double-quoted, and quotes are escaped
  // One inline token at a time, leftmost first: `code`, [label](url), **bold**, *italic*.
  const INLINE = /`([^`\n]+)`|\[([^\]\n]+)\]\(([^()\s]+)\)|\*\*([^*\n]+)\*\*|\*([^*\s](?:[^*\n]*[^*\s])?)\*/g;

  function safeUrl(url) {
    if (!/^https?:\/\//i.test(url)) return null; // no javascript:, data:, relative or protocol-relative
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  function inline(text) {
    const pattern = new RegExp(INLINE.source, "g"); // its own state: the calls below recurse
    let out = "";
    let last = 0;
    for (let match; (match = pattern.exec(text)) !== null; last = pattern.lastIndex) {
      out += escape(text.slice(last, match.index));
      const [whole, code, label, url, bold, italic] = match;
      if (code !== undefined) out += `<code>${escape(code)}</code>`;
      else if (label !== undefined) {
        const href = safeUrl(url);
        out += href ? `<a href="${escapeAttr(href)}" rel="noopener noreferrer nofollow" target="_blank">${inline(label)}</a>` : escape(whole);
      } else if (bold !== undefined) out += `<strong>${inline(bold)}</strong>`;
      else out += `<em>${inline(italic)}</em>`;
    }
    return out + escape(text.slice(last));
  }

  function render(source) {
    const out = [];
    let paragraph = [];
    let list = null; // { tag, start, items }
    let code = null; // { lang, lines }
    const flushParagraph = () => {
      if (paragraph.length) out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
      paragraph = [];
    };
    const flushList = () => {
      if (!list) return;
      const start = list.tag === "ol" && list.start !== 1 ? ` start="${list.start}"` : "";
      out.push(`<${list.tag}${start}>${list.items.map((item) => `<li>${item.map(inline).join("<br>")}</li>`).join("")}</${list.tag}>`);
      list = null;
    };
    const flushCode = () => {
      const lang = code.lang ? ` data-lang="${escapeAttr(code.lang)}"` : "";
      out.push(`<pre><code${lang}>${escape(code.lines.join("\n"))}</code></pre>`);
      code = null;
    };
    for (const line of String(source).split("\n")) {
      if (code) {
        if (/^\s*```\s*$/.test(line)) flushCode();
        else code.lines.push(line);
        continue;
      }
      const fence = /^\s*```\s*([\w+#.-]*)/.exec(line);
      if (fence) { flushParagraph(); flushList(); code = { lang: fence[1], lines: [] }; continue; }
      const heading = /^(#{1,4})\s+(.*)$/.exec(line);
      if (heading) {
        flushParagraph(); flushList();
        const level = heading[1].length + 2; // h3..h6: the column title is the h2
        out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
        continue;
      }
      const item = /^\s*([-*+]|(\d{1,9})[.)])\s+(.*)$/.exec(line);
      if (item) {
        flushParagraph();
        const tag = item[2] === undefined ? "ul" : "ol";
        if (list && list.tag !== tag) flushList();
        if (!list) list = { tag, start: tag === "ol" ? Number(item[2]) : 1, items: [] };
        list.items.push([item[3]]);
        continue;
      }
      if (line.trim() === "") { flushParagraph(); flushList(); continue; }
      if (list && /^\s+\S/.test(line)) { list.items[list.items.length - 1].push(line.trim()); continue; }
      flushList();
      paragraph.push(line);
    }
    flushParagraph(); flushList();
    if (code) flushCode(); // still streaming: show the code so far
    return out.join("");
  }

  return { render, escape };
})();
