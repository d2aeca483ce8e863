// `count`: lines, words, bytes and characters of a string or of a file, a
// FemtoClaw capability in Go.
//
// This is the package the generated bindings call (`witc bindgen-go`
// names it after the exported interface). Files are opened with the os
// package: every path resolves against the directories the policy mounted
// for this component, so the sandbox, not this code, decides what is
// reachable. The runtime has already validated the arguments against the
// input schemas below before Invoke runs.
package export_femtoclaw_runtime_tool_provider

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"unicode/utf8"

	"wit_component/femtoclaw_runtime_log"
	"wit_component/femtoclaw_runtime_tool_provider"
	"wit_component/femtoclaw_runtime_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

const outputSchema = `{"type":"object","properties":{` +
	`"lines":{"type":"integer","minimum":0},` +
	`"words":{"type":"integer","minimum":0},` +
	`"bytes":{"type":"integer","minimum":0},` +
	`"chars":{"type":"integer","minimum":0}},` +
	`"required":["lines","words","bytes","chars"],"additionalProperties":false}`

type counts struct {
	Lines int `json:"lines"`
	Words int `json:"words"`
	Bytes int `json:"bytes"`
	Chars int `json:"chars"`
}

func count(data []byte) counts {
	return counts{
		Lines: strings.Count(string(data), "\n"),
		Words: len(strings.Fields(string(data))),
		Bytes: len(data),
		Chars: utf8.RuneCount(data),
	}
}

func spec(name, description, input string, effect uint8) femtoclaw_runtime_types.ToolSpec {
	return femtoclaw_runtime_types.ToolSpec{
		Name:         name,
		Description:  description,
		InputSchema:  input,
		OutputSchema: witTypes.Some(outputSchema),
		Effect:       effect,
	}
}

// Describe lists the tools.
func Describe() []femtoclaw_runtime_types.ToolSpec {
	return []femtoclaw_runtime_types.ToolSpec{
		spec("count_text", "Lines, words, bytes and characters of a string.",
			`{"type":"object","properties":{"text":{"type":"string"}},`+
				`"required":["text"],"additionalProperties":false}`,
			femtoclaw_runtime_types.EffectClass_Pure),
		spec("count_file", "Lines, words, bytes and characters of a file at an absolute guest path.",
			`{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096}},`+
				`"required":["path"],"additionalProperties":false}`,
			femtoclaw_runtime_types.EffectClass_Read),
	}
}

type result = witTypes.Result[string, femtoclaw_runtime_types.ToolError]

func failed(message string) result {
	return witTypes.Err[string](femtoclaw_runtime_types.MakeToolErrorFailed(message))
}

func answer(c counts) result {
	text, err := json.Marshal(c)
	if err != nil {
		return failed(err.Error())
	}
	return witTypes.Ok[string, femtoclaw_runtime_types.ToolError](string(text))
}

// Invoke runs one validated call.
func Invoke(call femtoclaw_runtime_tool_provider.Invocation) result {
	femtoclaw_runtime_log.Log(femtoclaw_runtime_log.Level_Info, "invoke "+call.Tool)
	var args struct {
		Text string `json:"text"`
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil {
		return witTypes.Err[string](femtoclaw_runtime_types.MakeToolErrorInvalidArguments(err.Error()))
	}
	switch call.Tool {
	case "count_text":
		return answer(count([]byte(args.Text)))
	case "count_file":
		data, err := os.ReadFile(args.Path)
		if errors.Is(err, fs.ErrPermission) {
			return witTypes.Err[string](femtoclaw_runtime_types.MakeToolErrorDenied(err.Error()))
		}
		if err != nil {
			return failed(err.Error())
		}
		return answer(count(data))
	default:
		return witTypes.Err[string](femtoclaw_runtime_types.MakeToolErrorUnknownTool(call.Tool))
	}
}
