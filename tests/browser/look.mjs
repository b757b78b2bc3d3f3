// Checks of the shared look that every main page must pass, run by run.mjs on each page it
// weighs: the vendored font is in use for Vietnamese text, the main text has a WCAG 2 contrast
// ratio of at least 4.5:1 against its background, and at phone width nothing is wider than the
// screen (no sideways page scroll, no table sticking out of its box).

const MIN_CONTRAST = 4.5;
const TEXT = 'h1, h2, p, label, th, td, dt, dd, li, a, button, summary, small, code, footer, .user, select, input';

export async function lookChecks(page, name, check) {
  await page.evaluate(() => document.fonts.ready);
  const font = await page.evaluate(() => ({
    family: getComputedStyle(document.body).fontFamily,
    loaded: document.fonts.check('16px "Be Vietnam Pro"', 'Nguyễn Thị Hường'),
  }));
  check(font.family.startsWith('"Be Vietnam Pro"') && font.loaded, `${name}: the vendored font renders Vietnamese`);

  const worst = await page.evaluate(({ selector }) => {
    const rgba = (s) => {
      const m = s.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [r, g, b, a];
    };
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    // The colour behind an element: its own and its ancestors' backgrounds, blended.
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
      }
      let out = [255, 255, 255];
      for (const [r, g, b, a] of layers.reverse()) out = [r * a + out[0] * (1 - a), g * a + out[1] * (1 - a), b * a + out[2] * (1 - a)];
      return out;
    };
    let worst = { ratio: Infinity };
    for (const el of document.querySelectorAll(selector)) {
      const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
      const box = el.getBoundingClientRect();
      if (!text && !['INPUT', 'SELECT'].includes(el.tagName)) continue;
      if (box.width === 0 || box.height === 0 || box.right < 0 || getComputedStyle(el).visibility === 'hidden') continue;
      const bg = background(el);
      const fgc = rgba(getComputedStyle(el).color);
      const fg = [0, 1, 2].map((i) => fgc[i] * fgc[3] + bg[i] * (1 - fgc[3]));
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      if (ratio < worst.ratio) worst = { ratio, what: `${el.tagName.toLowerCase()} "${(text || el.value || '').slice(0, 30)}"` };
    }
    return worst;
  }, { selector: TEXT });
  check(worst.ratio >= MIN_CONTRAST,
    `${name}: every text has contrast ≥ ${MIN_CONTRAST}:1 (lowest ${worst.ratio.toFixed(2)}:1, ${worst.what})`);

  const width = page.viewportSize().width;
  if (width <= 480) {
    const over = await page.evaluate(() => {
      const w = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll('table, pre, img, svg, form, input, select')]
        .filter((e) => e.getBoundingClientRect().right > w + 1).map((e) => e.id || e.tagName.toLowerCase());
      return { scroll: document.documentElement.scrollWidth, w, wide };
    });
    check(over.scroll <= over.w && over.wide.length === 0,
      `${name}: nothing wider than the phone's ${over.w}px (page ${over.scroll}px${over.wide.length ? `; too wide: ${over.wide}` : ''})`);
  }
}
