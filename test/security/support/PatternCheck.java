import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.regex.Pattern;

/**
 * Reads lines "<base64 pattern> <base64 value>" on stdin and prints, per line, two flags:
 * whether Pattern.matcher(value).matches() and whether .find() accept the value. Systems
 * Manager validates allowedPattern on the service side (a Java service), so the document's
 * regexes are checked under Java's semantics as well as JavaScript's.
 */
public class PatternCheck {
  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    Base64.Decoder d = Base64.getDecoder();
    String line;
    StringBuilder out = new StringBuilder();
    while ((line = in.readLine()) != null) {
      if (line.isEmpty()) continue;
      String[] parts = line.split(" ", -1);
      String p = new String(d.decode(parts[0]), StandardCharsets.UTF_8);
      String v = new String(d.decode(parts[1]), StandardCharsets.UTF_8);
      Pattern pat = Pattern.compile(p);
      out.append(pat.matcher(v).matches() ? '1' : '0').append(pat.matcher(v).find() ? '1' : '0').append('\n');
    }
    System.out.print(out);
  }
}
