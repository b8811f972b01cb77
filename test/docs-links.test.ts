// The Markdown docs: every relative link and image in every Markdown file of the repository (README.md,
// SECURITY.md, docs/, the READMEs beside manifests and fixtures) points at a file that exists, and every
// `#anchor` at a heading of the file it names (GitHub's slugs). http(s) and mailto links are not
// followed (no network). README.md stays the front door: short, and one click from every docs/ file.
import GithubSlugger from 'github-slugger';
import { Lexer, walkTokens, type Token, type Tokens } from 'marked';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import t from 'tap';

const ROOT = join(import.meta.dirname, '..');
/** The README is the front door; detail belongs in docs/ (issue 9). */
const README_MAX_LINES = 300;

/** Build output, dependencies and local state (the git-ignored folders): not the repository's docs. */
const SKIPPED_DIRS = new Set(['.git', 'node_modules', 'dist', 'dist-bench', 'coverage', '.tap', '.bench-build', '.soak-build', 'certs', 'bench/results']);

/** Every Markdown file below `root` (build output and dependencies aside), relative to it, sorted. */
function markdownFiles(root: string, dir = ''): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory() && !SKIPPED_DIRS.has(path) && entry.name !== 'node_modules') found.push(...markdownFiles(root, path));
    else if (entry.isFile() && entry.name.endsWith('.md')) found.push(path);
  }
  return found.sort();
}

function tokensOf(text: string): Token[] {
  return new Lexer({ gfm: true }).lex(text);
}

/** The text a heading renders to, without Markdown: what GitHub makes its anchor from. */
function plainText(tokens: Token[]): string {
  return tokens
    .map((token) => {
      if ('tokens' in token && token.tokens !== undefined) return plainText(token.tokens);
      if (token.type === 'text' || token.type === 'codespan' || token.type === 'escape') return (token as Tokens.Text).text;
      return '';
    })
    .join('');
}

/** The anchors GitHub gives a file's headings: lowercase, spaces to '-', punctuation dropped, repeats numbered. */
function anchorsOf(text: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  walkTokens(tokensOf(text), (token) => {
    if (token.type === 'heading') anchors.add(slugger.slug(plainText((token as Tokens.Heading).tokens)));
  });
  return anchors;
}

interface Link {
  kind: 'link' | 'image';
  href: string;
}

/** Every link and image in a Markdown text, reference-style ones resolved to their targets. */
function linksOf(text: string): Link[] {
  const links: Link[] = [];
  walkTokens(tokensOf(text), (token) => {
    if (token.type === 'link' || token.type === 'image') links.push({ kind: token.type, href: (token as Tokens.Link).href });
    // Raw HTML links would escape this check: keep the docs to Markdown links.
    if (token.type === 'html' && /\s(href|src)\s*=/i.test((token as Tokens.HTML).text)) {
      links.push({ kind: 'link', href: `raw HTML: ${(token as Tokens.HTML).text.trim()}` });
    }
  });
  return links;
}

const EXTERNAL = /^(https?:|mailto:)/i;

/** What is wrong with the links of the Markdown files `files` (relative to `root`); empty when nothing is. */
function linkProblems(root: string, files: string[]): string[] {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsIn = (path: string) => {
    let anchors = anchorCache.get(path);
    if (anchors === undefined) anchorCache.set(path, (anchors = anchorsOf(readFileSync(path, 'utf8'))));
    return anchors;
  };
  const problems: string[] = [];
  for (const file of files) {
    const source = join(root, file);
    for (const { kind, href } of linksOf(readFileSync(source, 'utf8'))) {
      const problem = (what: string) => problems.push(`${file}: ${kind} ${href}: ${what}`);
      if (EXTERNAL.test(href)) continue;
      if (href.startsWith('raw HTML: ')) {
        problem('use a Markdown link, which this test can check');
        continue;
      }
      if (/^[a-z][a-z0-9+.-]*:/i.test(href)) {
        problem('unknown scheme');
        continue;
      }
      if (href.startsWith('/')) {
        problem('root-relative links only work on GitHub; link relative to this file');
        continue;
      }
      const hash = href.indexOf('#');
      const pathPart = decodeURIComponent((hash === -1 ? href : href.slice(0, hash)).replace(/\?.*$/, ''));
      const anchor = hash === -1 ? undefined : decodeURIComponent(href.slice(hash + 1));
      const target = pathPart === '' ? source : resolve(dirname(source), pathPart);
      const inRepo = relative(root, target);
      if (inRepo.startsWith('..')) {
        problem('points outside the repository');
        continue;
      }
      if (!existsSync(target)) {
        problem(`no such file ${inRepo.split(sep).join('/')}`);
        continue;
      }
      if (kind === 'image' && !statSync(target).isFile()) problem('an image must be a file');
      if (anchor === undefined) continue;
      if (extname(target) !== '.md' || !statSync(target).isFile()) {
        problem('an anchor needs a Markdown file');
        continue;
      }
      if (!anchorsIn(target).has(anchor)) problem(`no heading with anchor #${anchor} in ${inRepo.split(sep).join('/')}`);
    }
  }
  return problems;
}

void t.test('every relative link and image in the docs resolves, anchors included', (t) => {
  const files = markdownFiles(ROOT);
  for (const expected of ['README.md', 'SECURITY.md', 'manifests/optional/validating-admission-policy/README.md']) {
    t.ok(files.includes(expected), `${expected} is checked`);
  }
  t.same(linkProblems(ROOT, files), []);
  t.end();
});

void t.test('README.md is the front door: short, and links every file in docs/', (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const lines = readme.split('\n').length - (readme.endsWith('\n') ? 1 : 0);
  t.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines, at most ${README_MAX_LINES}: move detail to docs/`);
  const linked = new Set(linksOf(readme).map(({ href }) => href.replace(/[#?].*$/, '').replace(/^\.\//, '')));
  const docs = markdownFiles(ROOT).filter((file) => file.startsWith('docs/'));
  t.not(docs.length, 0, 'docs/ has files');
  for (const doc of docs) t.ok(linked.has(doc), `README.md links ${doc}`);
  t.end();
});

void t.test('the link check can fail', (t) => {
  const root = t.testdir({
    'README.md': [
      '# Title',
      '',
      '## Which `Pods`, and why?',
      '',
      '## Which `Pods`, and why?',
      '',
      '[ok](docs/a.md) [ok](#which-pods-and-why-1) [ok](docs/a.md#a-heading) [ok](docs/) [ok](docs/a.md?plain=1)',
      '[ok](https://example.com/missing) ![ok](docs/pic.png) [ok][ref]',
      '',
      '[missing](docs/b.md) [anchor](#nope) [cross](docs/a.md#nope) ![gone](img/gone.png) ![dir](docs)',
      '[outside](../elsewhere.md) [root](/README.md) [scheme](ftp://host/x) [code](docs/pic.png#L1) [bad][bad]',
      '',
      '| table | cell |',
      '| --- | --- |',
      '| [in a table](#missing-too) | x |',
      '',
      '<a href="docs/a.md">html</a>',
      '',
      '[ref]: docs/a.md#a-heading',
      '[bad]: docs/a.md#a-headin',
      '',
    ].join('\n'),
    docs: {
      'a.md': '# A heading\n\n[back](../README.md#title)\n',
      'pic.png': 'not really a png',
      deeper: { 'b.md': '[up](../../README.md#which-pods-and-why) [sibling](../a.md)\n' },
    },
    node_modules: { 'skipped.md': '[not ours](nowhere.md)\n' },
  });
  t.same(markdownFiles(root), ['README.md', 'docs/a.md', 'docs/deeper/b.md']);
  t.same(linkProblems(root, markdownFiles(root)), [
    'README.md: link docs/b.md: no such file docs/b.md',
    'README.md: link #nope: no heading with anchor #nope in README.md',
    'README.md: link docs/a.md#nope: no heading with anchor #nope in docs/a.md',
    'README.md: image img/gone.png: no such file img/gone.png',
    'README.md: image docs: an image must be a file',
    'README.md: link ../elsewhere.md: points outside the repository',
    'README.md: link /README.md: root-relative links only work on GitHub; link relative to this file',
    'README.md: link ftp://host/x: unknown scheme',
    'README.md: link docs/pic.png#L1: an anchor needs a Markdown file',
    'README.md: link docs/a.md#a-headin: no heading with anchor #a-headin in docs/a.md',
    'README.md: link #missing-too: no heading with anchor #missing-too in README.md',
    'README.md: link raw HTML: <a href="docs/a.md">: use a Markdown link, which this test can check',
  ]);
  t.end();
});
