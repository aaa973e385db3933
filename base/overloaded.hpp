// Overloaded: a visitor made of lambdas, for std::visit over the exit variant (VcpuExit).
#pragma once

namespace forkvm {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace forkvm
