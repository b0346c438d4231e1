#include "wisp/common/error_document.h"

#include "wisp/common/json_text.h"

namespace wisp {

std::string LambdaErrorDocument(std::string_view error_type, std::string_view error_message,
                                const std::vector<std::string>& stack_trace) {
  std::string doc = "{\"errorType\":";
  AppendJsonString(doc, error_type);
  doc += ",\"errorMessage\":";
  AppendJsonString(doc, error_message);
  doc += ",\"stackTrace\":";
  AppendJsonStringArray(doc, stack_trace);
  doc += '}';
  return doc;
}

}  // namespace wisp
