package metrics

import (
	"net/http"
	"strconv"
)

// Status codes as the code label carries them: every status net/http
// names (http.StatusText), and 499 (a client that hung up, as nginx
// counts it), exactly; any other status folded into its class ("4xx"), so
// a backend answering 299 or 0 cannot add series. The set is fixed when
// the process starts: at most len(codeLabels) series per route and method.
var codeLabels []string

// codeIndex maps a status in 0..599 to its index in codeLabels; statuses
// outside that range use their clamped class (see codeLabelIndex).
var codeIndex [600]uint8

// exactCodes is how many of codeLabels are exact codes; the five classes
// follow them.
var exactCodes int

func init() {
	for s := 100; s < len(codeIndex); s++ {
		if http.StatusText(s) != "" || s == 499 {
			codeIndex[s] = uint8(len(codeLabels))
			codeLabels = append(codeLabels, strconv.Itoa(s))
		}
	}
	exactCodes = len(codeLabels)
	codeLabels = append(codeLabels, codeClasses[:]...)
	for s := range codeIndex {
		if s < 100 || codeLabels[codeIndex[s]] != strconv.Itoa(s) {
			codeIndex[s] = uint8(exactCodes + classIndex(s))
		}
	}
}

// codeLabelIndex returns the index in codeLabels of status.
func codeLabelIndex(status int) int {
	if status >= 0 && status < len(codeIndex) {
		return int(codeIndex[status])
	}
	return exactCodes + classIndex(status)
}
