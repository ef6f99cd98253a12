import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Reads lines "<base64 pattern> <base64 value>" on stdin and prints, per line, two flags:
 * whether Pattern.matcher(value).matches() and whether .find() accept the value, or
 * "E <base64 message>" when Pattern.compile refuses the pattern. Systems Manager compiles
 * allowedPattern on the service side (a Java service: CreateDocument accepts patterns Go refuses),
 * so the documents' regexes are checked under Java's semantics as well as Go's and JavaScript's.
 */
public class PatternCheck {
  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    Base64.Decoder d = Base64.getDecoder();
    Base64.Encoder e = Base64.getEncoder();
    Map<String, Pattern> compiled = new HashMap<>();
    Map<String, String> failed = new HashMap<>();
    String line;
    StringBuilder out = new StringBuilder();
    while ((line = in.readLine()) != null) {
      if (line.isEmpty()) continue;
      String[] parts = line.split(" ", -1);
      String p = new String(d.decode(parts[0]), StandardCharsets.UTF_8);
      String v = new String(d.decode(parts[1]), StandardCharsets.UTF_8);
      if (failed.containsKey(p)) {
        out.append("E ").append(failed.get(p)).append('\n');
        continue;
      }
      Pattern pat = compiled.get(p);
      if (pat == null) {
        try {
          pat = Pattern.compile(p);
        } catch (PatternSyntaxException x) {
          String msg = e.encodeToString(x.getDescription().getBytes(StandardCharsets.UTF_8));
          failed.put(p, msg);
          out.append("E ").append(msg).append('\n');
          continue;
        }
        compiled.put(p, pat);
      }
      out.append(pat.matcher(v).matches() ? '1' : '0').append(pat.matcher(v).find() ? '1' : '0').append('\n');
    }
    System.out.print(out);
  }
}
