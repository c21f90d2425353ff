package exp
import ("testing";"fmt";"github.com/dagflow/dagflow")
func TestX(t *testing.T){
 for _, s := range []string{`{"a":1,}`, "{\n \"id\": \"x\",\n", `{"id":"x"} x`, `{"id":"x"} ,`, ``, `  `, `{"id" "x"}`, `{"id":"x",,}`, `[1,]`, `{"id":"x"}}`, "\ufeff{}", `{"id": tru}`, `{"id": "a\x01"}`, `{"id": 01}`} {
   _, err := dagflow.ParseWorkflow([]byte(s))
   fmt.Printf("%q\n   -> %v\n", s, err)
 }
}
