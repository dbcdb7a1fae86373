// Writes records into Kafka the way another producer would, with what kcat cannot write: transactions
// (commit and abort markers) and header names holding any bytes. Run by test/support/raw-producer.ts
// with Java's single-file launcher and the broker's own kafka-clients jar.
//
// Usage: java -cp '.cache/kafka/libs/*' RawProducer.java BROKERS TOPIC [TRANSACTIONAL_ID] < steps
// One step per line, fields separated by tabs, each field percent-encoded bytes ("~" alone: null):
//   begin | commit | abort | send PARTITION TIMESTAMP KEY VALUE [HEADER_NAME HEADER_VALUE]...
//   (TIMESTAMP in ms since the epoch, decimal; "~": the producer's clock)
// Prints "PARTITION OFFSET" for each send, once written ("-1 -1" for one that failed).
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class RawProducer {
  static byte[] field(String s) {
    if (s.equals("~")) return null;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '%') {
        out.write(Integer.parseInt(s.substring(i + 1, i + 3), 16));
        i += 2;
      } else out.write((byte) c);
    }
    return out.toByteArray();
  }

  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", args[0]);
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    p.put("enable.idempotence", "true");
    p.put("acks", "all");
    if (args.length > 2) p.put("transactional.id", args[2]);
    String topic = args[1];
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      if (args.length > 2) producer.initTransactions();
      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
      List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
      for (String line; (line = in.readLine()) != null; ) {
        if (line.isEmpty()) continue;
        String[] f = line.split("\t", -1);
        switch (f[0]) {
          case "begin" -> producer.beginTransaction();
          case "commit" -> producer.commitTransaction();
          case "abort" -> {
            producer.flush(); // so the aborted records are in the log, before their marker
            producer.abortTransaction();
          }
          case "send" -> {
            Long timestamp = f[2].equals("~") ? null : Long.parseLong(f[2]);
            ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, Integer.parseInt(f[1]), timestamp, field(f[3]), field(f[4]));
            for (int h = 5; h + 1 < f.length; h += 2) r.headers().add(new String(field(f[h]), StandardCharsets.UTF_8), field(f[h + 1]));
            sent.add(producer.send(r));
          }
          default -> throw new IllegalArgumentException("unknown step " + f[0]);
        }
      }
      producer.flush();
      for (var s : sent) {
        try {
          RecordMetadata m = s.get();
          System.out.println(m.partition() + " " + m.offset());
        } catch (java.util.concurrent.ExecutionException e) {
          System.out.println("-1 -1"); // failed, or in a transaction aborted before it was sent
        }
      }
    }
  }
}
