package metrics

import "strconv"

// Status codes as the code label carries them: the codes in statusCodes
// exactly, any other status folded into its class ("4xx"), so a backend
// answering 299 or 0 cannot add series. The set is fixed at build time:
// at most len(codeLabels) series per route and method.
var statusCodes = [...]int{
	100, 101, 103,
	200, 201, 202, 203, 204, 205, 206, 207,
	300, 301, 302, 303, 304, 307, 308,
	400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
	421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 499,
	500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
}

// codeLabels are the code label values: the exact codes, then the five
// classes, in that order.
var codeLabels [len(statusCodes) + len(codeClasses)]string

// codeIndex maps a status in 0..599 to its index in codeLabels; statuses
// outside that range use their clamped class (see codeLabelIndex).
var codeIndex [600]uint8

func init() {
	for i, c := range codeClasses {
		codeLabels[len(statusCodes)+i] = c
	}
	for s := range codeIndex {
		codeIndex[s] = uint8(len(statusCodes) + classIndex(s))
	}
	for i, c := range statusCodes {
		codeLabels[i] = strconv.Itoa(c)
		codeIndex[c] = uint8(i)
	}
}

// codeLabelIndex returns the index in codeLabels of status.
func codeLabelIndex(status int) int {
	if status >= 0 && status < len(codeIndex) {
		return int(codeIndex[status])
	}
	return len(statusCodes) + classIndex(status)
}
