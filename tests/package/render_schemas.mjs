// Renders the component's UI schemas with @json-editor/json-editor in headless Chromium (driven by playwright-core)
// and prints, as JSON, what each form would save.
//
//   node tests/package/render_schemas.mjs < cases.json > results.json
//
// stdin: {"cases": [{"name", "schema" (a JSON schema, or the path of one), "set": [[editor path, value], ...],
//                    "observe": [editor path, ...]}, ...]}
// stdout: {"browser": version, "results": {name: {"value", "errors", "observed": {path: {"value", "shown"}}}}}
//
// "set" does what a user does in the form (editor.setValue on one field); everything else stays untouched.
// "shown" is what the control displays: a checkbox's state, the text of the selected option, an input's text.
// The page loads nothing from the network: json-editor comes from node_modules, the schemas from disk.
// Environment: CHROMIUM (default /usr/bin/chromium); SCREENSHOT_DIR: also save a PNG of each form there.

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
const { chromium } = require('playwright-core')

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]
// The options of a plain `new JSONEditor(element, {schema})`, plus the ones that only change the looks.
const EDITOR_OPTIONS = { theme: 'html', iconlib: null, disable_edit_json: true, disable_properties: true }

const input = JSON.parse(readFileSync(0, 'utf8'))
const jsonEditorJs = join(dirname(require.resolve('@json-editor/json-editor/package.json')), 'dist', 'jsoneditor.js')

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: false, // the flags above say --headless themselves, exactly as given
  args: CHROMIUM_FLAGS,
  timeout: 60000,
})
try {
  const page = await browser.newPage()
  const pageErrors = []
  page.on('pageerror', (err) => pageErrors.push(String(err)))
  await page.route('**/*', (route) => route.abort()) // nothing from the network
  await page.setContent('<!doctype html><html><body><div id="forms"></div></body></html>')
  await page.addScriptTag({ content: readFileSync(jsonEditorJs, 'utf8') })

  const results = {}
  for (const c of input.cases) {
    const schema = typeof c.schema === 'string' ? JSON.parse(readFileSync(c.schema, 'utf8')) : c.schema
    results[c.name] = await page.evaluate(
      async ({ schema, set, observe, options }) => {
        const holder = document.createElement('div')
        document.getElementById('forms').appendChild(holder)
        const editor = new window.JSONEditor(holder, { ...options, schema })
        await new Promise((resolve) => editor.on('ready', resolve))
        for (const [path, value] of set || []) {
          const field = editor.getEditor(path)
          if (!field) throw new Error(`no field ${path} in the form`)
          field.setValue(value)
        }
        const shown = (path) => {
          const field = editor.getEditor(path)
          if (!field) return { missing: true }
          const control = field.input
          let text = null
          if (control && control.type === 'checkbox') text = control.checked
          else if (control && control.tagName === 'SELECT') text = control.selectedOptions[0]?.textContent ?? null
          else if (control) text = control.value
          const hidden = !field.container || field.container.offsetParent === null
          return { value: field.getValue() === undefined ? '<undefined>' : field.getValue(), shown: text, hidden }
        }
        const observed = {}
        for (const path of observe || []) observed[path] = shown(path)
        const value = editor.getValue()
        const errors = editor.validate().map((e) => `${e.path}: ${e.message}`)
        holder.id = 'current-form'
        return { value, errors, observed }
      },
      { schema, set: c.set, observe: c.observe, options: { ...EDITOR_OPTIONS, ...(c.options || {}) } },
    )
    if (process.env.SCREENSHOT_DIR) {
      await page.locator('#current-form').screenshot({ path: join(process.env.SCREENSHOT_DIR, `${c.name}.png`) })
    }
    await page.evaluate(() => document.getElementById('current-form').remove())
  }
  process.stdout.write(JSON.stringify({ browser: browser.version(), results, pageErrors }, null, 1))
} finally {
  await browser.close()
}
