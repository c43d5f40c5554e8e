package licensing

import "strings"

// ReportCSVHeader is the header line of the CSV report, served by the JSON
// API and the console alike. New columns go at the end, so that readers
// of the earlier columns by position keep working.
var ReportCSVHeader = []string{"user_id", "display_name", "user_principal_name", "status", "assigned", "revoked", "licenses", "usage_location", "error_code", "error_message", "plans_changed", "inherited", "note", "disabled_plans"}

// ReportCSVRecord fills rec (len(ReportCSVHeader) cells) with row. Every
// cell goes through CSVSafe, not only the names: user and SKU IDs are
// chosen by clients and may start with '=', and error messages quote them.
func ReportCSVRecord(rec []string, row *ReportRow) {
	rec[0], rec[1], rec[2], rec[3] = row.UserID, row.DisplayName, row.UserPrincipalName, row.Status
	rec[4], rec[5], rec[6] = strings.Join(row.Assigned, ";"), strings.Join(row.Revoked, ";"), strings.Join(row.Licenses, ";")
	rec[7], rec[8], rec[9] = "", "", ""
	rec[10] = strings.Join(row.PlansChanged, ";")
	if row.UsageLocation != nil {
		rec[7] = *row.UsageLocation
	}
	if row.Error != nil {
		rec[8], rec[9] = string(row.Error.Code), row.Error.Message
	}
	rec[11], rec[12], rec[13] = inheritedCell(row.LicenseSources), row.Note, plansCell(row.DisabledPlans)
	for i, v := range rec {
		rec[i] = CSVSafe(v)
	}
}

// CSVSafe defuses spreadsheet formula injection: a cell starting with
// = + - @, a tab or a line break is prefixed with a quote, which
// spreadsheets show as text and do not evaluate (OWASP "CSV Injection").
func CSVSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r\n", rune(s[0])) {
		return "'" + s
	}
	return s
}

// plansCell renders disabled plans by SKU as "sku:plan|plan" pairs sorted
// by SKU and separated by ';' ("sku:" when every plan of it is on).
func plansCell(plans map[string][]string) string {
	parts := make([]string, 0, len(plans))
	for _, sku := range sortedKeys(plans) {
		parts = append(parts, sku+":"+strings.Join(plans[sku], "|"))
	}
	return strings.Join(parts, ";")
}

// inheritedCell renders the licenses a user inherits from groups as
// "sku:group|group" pairs separated by ';', empty when it inherits none.
// Licenses also held directly are marked "+direct".
func inheritedCell(sources []LicenseSource) string {
	var parts []string
	for _, s := range sources {
		if !s.Inherited() {
			continue
		}
		p := s.SKU + ":" + strings.Join(s.InheritedFrom, "|")
		if s.Direct {
			p += "+direct"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ";")
}
