// Plain HTTP/1.1 and TCP for tests that talk to a real server's sockets: one request per
// connection (Connection: close), answers read until the server closes (5 s receive timeout).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace quiver::testing {

// A connected loopback socket, or -1.
inline int Dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

inline std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, size_t(n));
  return out;
}

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// One request on its own connection (Connection: close).
inline HttpAnswer Http(uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body = "", const std::string& key = "") {
  int fd = Dial(port);
  if (fd < 0) return HttpAnswer{};
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!key.empty()) req += "X-Api-Key: " + key + "\r\n";
  req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string raw = ReadAll(fd);
  ::close(fd);
  HttpAnswer a;
  if (raw.size() > 12) a.status = std::stoi(raw.substr(9, 3));
  const size_t split = raw.find("\r\n\r\n");
  if (split != std::string::npos) a.body = raw.substr(split + 4);
  return a;
}

}  // namespace quiver::testing
