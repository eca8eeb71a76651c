package main

import (
	"fmt"
	"html"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler"
)

// palette colours the text plan; the zero palette prints plain text.
type palette struct{ add, del, mod, bold, warn, reset string }

var ansi = palette{add: "\x1b[32m", del: "\x1b[31m", mod: "\x1b[33m", bold: "\x1b[1m", warn: "\x1b[35m", reset: "\x1b[0m"}

// colorsFor resolves --color: auto colours a terminal unless $NO_COLOR is set.
func colorsFor(mode string, w io.Writer) (palette, error) {
	switch mode {
	case "always":
		return ansi, nil
	case "never":
		return palette{}, nil
	case "auto":
		if isTerminal(w) && os.Getenv("NO_COLOR") == "" {
			return ansi, nil
		}
		return palette{}, nil
	}
	return palette{}, fmt.Errorf("--color %q: want auto, always or never", mode)
}

// isTerminal tells whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (c palette) paint(op, s string) string {
	col := map[string]string{"added": c.add, "removed": c.del, "changed": c.mod}[op]
	if col == "" {
		return s
	}
	return col + s + c.reset
}

var opSign = map[string]string{"added": "+", "removed": "-", "changed": "~"}

// summaryOps pairs each summary line with the operation it reports.
func summaryOps(p reconciler.Plan) []string {
	ops := make([]string, len(p.Summary))
	for i, line := range p.Summary {
		ops[i] = "unchanged"
		for _, wp := range p.Workloads {
			if strings.HasPrefix(line, wp.Name+": ") {
				ops[i] = wp.Op
				if wp.Op == "unchanged" && wp.Now != wp.After {
					ops[i] = "changed"
				}
			}
		}
		for _, c := range p.Changes {
			if c.Kind != "Deployment" && strings.HasPrefix(line, c.Kind+" "+c.Name+": ") {
				ops[i] = c.Op
			}
		}
	}
	return ops
}

// printPlan writes the plan for a terminal: the summary, then the
// object changes field by field, where new replicas land, what fits
// nowhere, and the warnings.
func printPlan(w io.Writer, p reconciler.Plan, c palette) {
	for _, e := range p.Errors {
		fmt.Fprintf(w, "%serror:%s %s\n", c.del, c.reset, e)
	}
	if len(p.Errors) > 0 {
		return
	}
	fmt.Fprintf(w, "%sPlan against revision %s%s (live index %s)\n\n", c.bold, short(p.Against.Revision), c.reset, p.Against.Index)
	for i, op := range summaryOps(p) {
		sign := opSign[op]
		if sign == "" {
			sign = " "
		}
		fmt.Fprintf(w, "  %s\n", c.paint(op, sign+" "+p.Summary[i]))
	}
	fmt.Fprintln(w)
	printChangesColored(w, p.Changes, c)
	var placed, unfit []string
	for _, wp := range p.Workloads {
		if len(wp.Placements) > 0 {
			placed = append(placed, fmt.Sprintf("  %s: %s", wp.Name, placements(wp.Placements)))
		}
		if wp.Unplaceable > 0 {
			unfit = append(unfit, fmt.Sprintf("  %s: %d: %s", wp.Name, wp.Unplaceable, wp.Reason))
		}
	}
	if len(placed) > 0 {
		fmt.Fprintf(w, "\n%sNew replicas%s (by the scheduler, against the live nodes):\n%s\n", c.bold, c.reset, strings.Join(placed, "\n"))
	}
	if len(unfit) > 0 {
		fmt.Fprintf(w, "\n%sWould not fit:%s\n%s\n", c.del, c.reset, strings.Join(unfit, "\n"))
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintln(w)
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "%swarning:%s %s\n", c.warn, c.reset, warn)
	}
}

func printChangesColored(w io.Writer, changes []desired.Change, c palette) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "No changes.")
		return
	}
	fmt.Fprintf(w, "%s\n\n", changeCounts(changes))
	for _, ch := range changes {
		fmt.Fprintln(w, c.paint(ch.Op, fmt.Sprintf("%s %s %s", opSign[ch.Op], ch.Kind, ch.Name)))
		for _, f := range ch.Fields {
			switch {
			case f.Old == "":
				fmt.Fprintf(w, "    %s: %s\n", f.Path, c.paint("added", "+ "+f.New))
			case f.New == "":
				fmt.Fprintf(w, "    %s: %s\n", f.Path, c.paint("removed", "- "+f.Old))
			default:
				fmt.Fprintf(w, "    %s: %s → %s\n", f.Path, c.paint("removed", f.Old), c.paint("added", f.New))
			}
		}
	}
}

func placements(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, n := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// printPlanMarkdown writes a PR comment: the summary, a table of the
// workloads, a collapsible section per workload and per other object,
// then the warnings.
func printPlanMarkdown(w io.Writer, p reconciler.Plan) {
	fmt.Fprintln(w, "### Baton plan")
	if len(p.Errors) > 0 {
		fmt.Fprintln(w, "\n**The revision does not load:**\n\n```")
		for _, e := range p.Errors {
			fmt.Fprintln(w, e)
		}
		fmt.Fprintln(w, "```")
		return
	}
	fmt.Fprintf(w, "\nAgainst revision `%s` (live index `%s`).\n\n", short(p.Against.Revision), p.Against.Index)
	for i, op := range summaryOps(p) {
		sign := opSign[op]
		if sign == "" {
			sign = "·"
		}
		fmt.Fprintf(w, "- `%s` %s\n", sign, mdEscape(p.Summary[i]))
	}
	fmt.Fprintln(w, "\n| workload | change | replicas | set by | rollout | new replicas on | would not fit |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, wp := range p.Workloads {
		fmt.Fprintf(w, "| %s | %s | %d → %d | %s | %s | %s | %s |\n", wp.Name, opLabel(wp), wp.Now, wp.After, mdEscape(wp.Owner),
			orDash(mdEscape(wp.Rollout)), orDash(placements(wp.Placements)), orDash(unfitCell(wp)))
	}
	changes := map[string]desired.Change{}
	for _, c := range p.Changes {
		if c.Kind == "Deployment" {
			changes[c.Name] = c
		}
	}
	for _, wp := range p.Workloads {
		c, ok := changes[wp.Name]
		if !ok && wp.Now == wp.After {
			continue
		}
		fmt.Fprintf(w, "\n<details><summary><b>%s</b>: %s</summary>\n\n", html.EscapeString(wp.Name), opLabel(wp))
		fmt.Fprintf(w, "- image: `%s`", wp.Image)
		if wp.ImageBefore != "" {
			fmt.Fprintf(w, " (was `%s`)", wp.ImageBefore)
		}
		fmt.Fprintf(w, "\n- replicas: %d → %d, set by %s\n", wp.Now, wp.After, mdEscape(wp.Owner))
		if wp.Rollout != "" {
			fmt.Fprintf(w, "- rollout: %s\n", mdEscape(wp.Rollout))
		}
		if len(wp.Placements) > 0 {
			fmt.Fprintf(w, "- new replicas on: %s\n", placements(wp.Placements))
		}
		if wp.Unplaceable > 0 {
			fmt.Fprintf(w, "- **would not fit**: %s\n", mdEscape(unfitCell(wp)))
		}
		writeFields(w, c.Fields)
		fmt.Fprintln(w, "\n</details>")
	}
	for _, c := range p.Changes {
		if c.Kind != "Deployment" {
			writeChangeDetails(w, c)
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintln(w, "\n**Warnings**")
		for _, warn := range p.Warnings {
			fmt.Fprintf(w, "\n> %s\n", mdEscape(warn))
		}
	}
}

// writeChangeDetails writes one object's change as a collapsible section
// with its fields as a diff.
func writeChangeDetails(w io.Writer, c desired.Change) {
	fmt.Fprintf(w, "\n<details><summary>%s <b>%s</b>: %s</summary>\n", c.Kind, html.EscapeString(c.Name), c.Op)
	writeFields(w, c.Fields)
	fmt.Fprintln(w, "\n</details>")
}

// printChangesMarkdown writes baton diff's changes as a PR comment, in
// the plan's Markdown: a count line, then a section per object.
func printChangesMarkdown(w io.Writer, from, to string, changes []desired.Change) {
	fmt.Fprintf(w, "### Baton diff `%s` → `%s`\n\n", mdEscape(from), mdEscape(to))
	if len(changes) == 0 {
		fmt.Fprintln(w, "No changes.")
		return
	}
	fmt.Fprintln(w, changeCounts(changes))
	for _, c := range changes {
		writeChangeDetails(w, c)
	}
}

// changeCounts is "1 added, 2 changed, 0 removed".
func changeCounts(changes []desired.Change) string {
	n := map[string]int{}
	for _, ch := range changes {
		n[ch.Op]++
	}
	return fmt.Sprintf("%d added, %d changed, %d removed", n["added"], n["changed"], n["removed"])
}

func writeFields(w io.Writer, fields []desired.FieldChange) {
	if len(fields) == 0 {
		return
	}
	fmt.Fprintln(w, "\n```diff")
	for _, f := range fields {
		if f.Old != "" {
			fmt.Fprintf(w, "- %s: %s\n", f.Path, f.Old)
		}
		if f.New != "" {
			fmt.Fprintf(w, "+ %s: %s\n", f.Path, f.New)
		}
	}
	fmt.Fprintln(w, "```")
}

// opLabel is the workload's change; "scaled" when only its count moves.
func opLabel(wp reconciler.WorkloadPlan) string {
	if wp.Op == "unchanged" && wp.Now != wp.After {
		return "scaled"
	}
	return wp.Op
}

func unfitCell(wp reconciler.WorkloadPlan) string {
	if wp.Unplaceable == 0 {
		return ""
	}
	return fmt.Sprintf("%d: %s", wp.Unplaceable, wp.Reason)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mdEscape keeps text from breaking a table or opening HTML.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "`", "'").Replace(s)
}
